"""Every benchmark of issue 7, one table: ``make bench`` (or ``python bench/run.py``).

    python bench/run.py [--quick] [--only tier_info,spend,webhooks,coldstart,growth,task_queue]
                        [--markdown var/bench/latest.md] [--docs docs/performance.md]

Needs PostgreSQL (``BENCH_DATABASE_URL``, default postgres://postgres@127.0.0.1:5432/
hrvstr_bench, created and migrated when missing) and wrk. Every figure is a median of rounds
measured in this run, next to its baseline measured in the same run, so compare ratios
across machines rather than absolute numbers. ``--quick`` scales every section down (the
webhook bursts to 250 events, no ``make run`` from a clone, the queue section without the rows
that only tell its gains apart) for a check in about two minutes (102-148 s on 2-core
machines on 2026-12-03; 146 s on a slow one and 100-114 s on another on 2026-12-04; the
aim is under two). The full run posts 1,000
first webhook deliveries (200 customers) and bursts 2,000 events through the queue (400
customers); issue 7's and 14's 2,000 customers with
``BENCH_WEBHOOK_CUSTOMERS=2000 BENCH_QUEUE_CUSTOMERS=2000``.
The whole test suite's time is left to ``make test`` (``BENCH_SUITE=1`` adds it), so that
``make bench`` aims at ten minutes (on 2026-12-03: 489 s on the fastest machine, 542-632 s
on the last one, 671-700 s on one half as fast; 582 s and 448 s on two machines on
2026-12-04; docs/performance.md).

A run of every section (full or ``--quick``) also rewrites the table in docs/performance.md,
between its ``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers, with the command
line in its title: that table is the bench's, never edited by hand. ``--docs PATH`` writes
it after a partial run too; ``--docs ''`` never.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import traceback
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
DOCS = BASE_DIR / "docs" / "performance.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
DOCS_TEMPLATE = f"""# Performance

The table below is written by `python bench/run.py` (`make bench`; `make bench-quick` for
the scaled-down run) at the end of each run of every section: each row is a median measured
in that run, next to its baseline measured in the same run, the ratio between them, the
target and whether it was met. Edit the text around it, never the table.

{START}
{END}
"""


def docs_write(path: Path, table: str) -> None:
    """Put ``table`` between the markers of ``path`` (made from the template if missing; a
    page without the markers gets them, as a last section)."""
    text = path.read_text() if path.exists() else DOCS_TEMPLATE
    if START not in text or END not in text or text.index(START) > text.index(END):
        text = f"{text.rstrip()}\n\n## The latest run\n\n{START}\n{END}\n"
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{before}{START}\n{table}\n{END}{after}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="scaled down, about two minutes")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--markdown", default=str(BASE_DIR / "var" / "bench" / "latest.md"))
    parser.add_argument(
        "--docs", default=None, help="where the table goes (default: docs/performance.md "
        "after a run of every section; '' never)",
    )  # fmt: skip
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
            log(f"{name} failed: {exc!r}\n{traceback.format_exc()}")
            rows.append(Row(name, "FAILED", repr(exc)[:80], verdict="MISSED"))
        timings.append(f"{name} {time.perf_counter() - section_start:.0f} s")
    total = time.perf_counter() - started
    command = shlex.join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    title = (
        f"`{command}`: {about}, load average {os.getloadavg()[0]:.2f} at the end; "
        f"gunicorn: {WORKERS} sync workers unless a row says otherwise; "
        f"took {total:.0f} s ({', '.join(timings)})"
    )
    print()
    text = print_table(rows, title=title)
    path = Path(args.markdown)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    log(f"table written to {path}")
    docs = args.docs if args.docs is not None else (str(DOCS) if wanted == list(SECTIONS) else "")
    if docs:
        docs_write(Path(docs), text)
        log(f"table written to {docs}")
    sys.stdout.flush()
    os._exit(0)  # the webhook section leaves SDK threads behind; nothing is left to flush


if __name__ == "__main__":
    sys.exit(main())
