"""Every benchmark of issue 7, one table: ``make bench`` (or ``python bench/run.py``).

    python bench/run.py [--quick] [--only tier_info,spend,webhooks,coldstart,growth,task_queue]
                        [--markdown var/bench/latest.md]

Needs PostgreSQL (``BENCH_DATABASE_URL``, default postgres://postgres@127.0.0.1:5432/
hrvstr_bench, created and migrated when missing) and wrk. Every figure is a median of rounds
measured in this run, next to its baseline measured in the same run, so compare ratios
across machines rather than absolute numbers. ``--quick`` scales every section down (the
webhook burst to 500 events) for a check in about two minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BASE_DIR,
    WORKERS,
    Row,
    django_setup,
    have_wrk,
    log,
    machine,
    print_table,
)

SECTIONS = ("tier_info", "spend", "webhooks", "coldstart", "growth", "task_queue")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="scaled down, about two minutes")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--markdown", default=str(BASE_DIR / "var" / "bench" / "latest.md"))
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if not have_wrk():
        parser.error("wrk is needed (apt-get install wrk)")
    about = machine()
    django_setup()
    from bench import coldstart, growth, spend, task_queue, tier_info, webhooks

    modules = {
        "tier_info": tier_info,
        "spend": spend,
        "webhooks": webhooks,
        "coldstart": coldstart,
        "growth": growth,
        "task_queue": task_queue,
    }
    rows: list[Row] = []
    timings = []
    started = time.perf_counter()
    for name in wanted:
        section_start = time.perf_counter()
        log(f"== {name}")
        try:
            rows.extend(modules[name].run(quick=args.quick))
        except Exception as exc:  # one broken section must not hide the others' figures
            log(f"{name} failed: {exc!r}")
            rows.append(Row(name, "FAILED", repr(exc)[:80], verdict="MISSED"))
        timings.append(f"{name} {time.perf_counter() - section_start:.0f} s")
    total = time.perf_counter() - started
    mode = "--quick" if args.quick else "full"
    title = (
        f"bench/run.py {mode}: {about}; gunicorn sync workers: {WORKERS} "
        f"(8 for webhooks); took {total:.0f} s ({', '.join(timings)})"
    )
    print()
    text = print_table(rows, title=title)
    path = Path(args.markdown)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    log(f"table written to {path}")
    sys.stdout.flush()
    os._exit(0)  # the webhook section leaves SDK threads behind; nothing is left to flush


if __name__ == "__main__":
    sys.exit(main())
