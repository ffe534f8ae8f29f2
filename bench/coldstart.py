"""Cold start: a fresh clone to a served page with ``make run``, ``migrate`` on an empty
database (SQLite and PostgreSQL), and the whole test suite's wall time.

The clone is ``git clone`` of this checkout's HEAD into a temporary folder. In the full run it
gets a brand-new virtualenv (pip installs from PyPI through pip's own cache, so only the first
run on a machine downloads); ``--quick`` skips it (pip checking every requirement took
100 s). The suite runs as ``make test`` runs
it (serial, SQLite) only with ``BENCH_SUITE=1``: on a busy 2-core machine it alone took longer
than the ten minutes ``make bench`` has, and ``make test`` reports it anyway.

    python bench/coldstart.py [--quick]
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BASE_DIR,
    BENCH_DATABASE_URL,
    PYTHON,
    SERVER_ENV,
    Row,
    free_port,
    log,
    median,
    print_table,
    verdict,
)

MIGRATE_TARGET = 10.0  # seconds


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without what the other benches set for their server."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}
    env.pop("VIRTUAL_ENV", None)
    return env | extra


def make_run(venv: Path | None) -> tuple[float, str]:
    """Seconds from ``git clone`` to the first 200 that ``make run`` serves for a page
    (``/admin/login/``: a template rendered with its static files linked)."""
    host_python = shutil.which("python3.11") or shutil.which("python3") or "python3"
    with tempfile.TemporaryDirectory(prefix="hrvstr-cold-") as tmp:
        clone = Path(tmp) / "hrvstr"
        port, emulator_port = free_port(), free_port()
        start = time.perf_counter()
        subprocess.run(["git", "clone", "--quiet", str(BASE_DIR), str(clone)], check=True)
        command = ["make", "run", f"PYTHON={host_python}", f"PORT={port}"]
        if venv is not None:
            command.append(f"VENV={venv}")
        env = clean_env(STRIPE_EMULATOR_PORT=str(emulator_port))
        for key in ("STRIPE_TEST_SECRET_KEY", "STRIPE_TEST_WEBHOOK_SECRET", "DATABASE_URL"):
            env.pop(key, None)
        log_path = Path(tmp) / "make-run.log"
        with open(log_path, "w") as out:
            process = subprocess.Popen(
                command, cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 420
                while True:
                    try:
                        with urllib.request.urlopen(
                            f"http://127.0.0.1:{port}/admin/login/", timeout=5
                        ) as r:
                            if r.status == 200:
                                break
                    except Exception:
                        pass
                    if process.poll() is not None or time.monotonic() > deadline:
                        tail = log_path.read_text()[-2000:]
                        raise RuntimeError(f"make run did not serve a page:\n{tail}")
                    time.sleep(0.2)
                seconds = time.perf_counter() - start
            finally:
                # The process group is ours (start_new_session): make, the app, the emulator.
                # It may be gone already (make failed): the failure is what to report then.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        return seconds, "new venv" if venv is None else "kept venv"


def migrate_seconds(database_url: str) -> float:
    env = clean_env(DATABASE_URL=database_url, DEBUG="true", PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=env, check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def migrate_sqlite() -> float:
    with tempfile.TemporaryDirectory(prefix="hrvstr-migrate-") as tmp:
        return migrate_seconds(f"sqlite:///{tmp}/empty.sqlite3")


def migrate_postgres() -> float:
    base, _, bench_name = BENCH_DATABASE_URL.rpartition("/")
    # Named after the bench's database: on a shared server, names carry their owner's prefix.
    name = f"{bench_name}_migrate_{os.getpid()}"
    admin = clean_env()
    host_args = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["createdb", *host_args, name], check=True, env=admin)
    try:
        return migrate_seconds(f"{base}/{name}")
    finally:
        subprocess.run(["dropdb", *host_args, "--if-exists", name], check=True, env=admin)


def suite_seconds() -> tuple[float, str]:
    env = clean_env()
    env.pop("DATABASE_URL", None)
    start = time.perf_counter()
    result = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:randomly"], cwd=BASE_DIR, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    last = (result.stdout.strip().splitlines() or ["?"])[-1]
    return seconds, last


def run(quick: bool = False) -> list[Row]:
    rows = []
    if quick:
        # pip checking every requirement in a kept venv took 100 s of a 2-minute budget.
        rows.append(
            Row("4 cold start", "fresh clone -> page served by make run", "skipped (--quick)")
        )
    else:
        seconds, how = make_run(None)
        log(f"coldstart: make run served / after {seconds:.1f} s ({how})")
        rows.append(
            Row(
                "4 cold start",
                f"fresh clone -> page served by make run ({how})",
                f"{seconds:.1f} s",
                "pip from PyPI via pip's cache",
            )
        )
    repeats = 1 if quick else 3
    for name, measure in (("SQLite", migrate_sqlite), ("PostgreSQL", migrate_postgres)):
        times = [measure() for _ in range(repeats)]
        log(f"coldstart: migrate {name}: {times}")
        value = median(times)
        rows.append(
            Row(
                "4 cold start",
                f"migrate an empty {name} database",
                f"{value:.1f} s",
                "",
                "",
                f"< {MIGRATE_TARGET:.0f} s",
                verdict(value < MIGRATE_TARGET),
            )
        )
    if quick or os.environ.get("BENCH_SUITE") != "1":
        why = "--quick" if quick else "BENCH_SUITE=1 runs it"
        rows.append(Row("4 cold start", "whole test suite (SQLite, serial)", f"skipped ({why})"))
    else:
        seconds, summary = suite_seconds()
        log(f"coldstart: suite {seconds:.0f} s: {summary}")
        rows.append(
            Row("4 cold start", "whole test suite (SQLite, serial, as make test)",
                f"{seconds:.0f} s", summary)
        )  # fmt: skip
    return rows


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
