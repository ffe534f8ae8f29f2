"""What every benchmark shares: the bench database, a gunicorn server, wrk, medians, the table.

Benchmarks run against PostgreSQL (``BENCH_DATABASE_URL``, default the local ``hrvstr_bench``)
and a multi-process gunicorn serving the production settings (DEBUG off) on 127.0.0.1. A
candidate is always measured next to its baseline in the same run, interleaved, and the table
quotes medians of the rounds and the ratio between them: the machine's noise hits both sides.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENCH_DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hrvstr_bench"
)
STRIPE_KEY = "sk_test_hrvstrBench0123456789abcdefgh"
WEBHOOK_SECRET = "whsec_hrvstr_bench_0123456789"
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))

# The server's environment: production settings (DEBUG off), no TLS redirect on loopback,
# no rate limits (these benches are not about them), the floor endpoint on.
SERVER_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    "RATELIMIT_ENABLE": "false",
    "HRVSTR_BENCH_ENDPOINTS": "true",
    "DATABASE_URL": BENCH_DATABASE_URL,
    "JWT_ACCESS_MINUTES": "600",
    "LOG_LEVEL": "WARNING",
    "STRIPE_TEST_SECRET_KEY": STRIPE_KEY,
    "STRIPE_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "DJANGO_SETTINGS_MODULE": "hrvstr.settings",
    # The webhooks section measures a delivery processed in its request (issue 7's figure,
    # the baseline of issue 14); BENCH_TASK_MODE=queue measures the queue's intake instead
    # (workers: `manage.py procrastinate worker`).
    "HRVSTR_TASK_MODE": os.environ.get("BENCH_TASK_MODE", "inline"),
    # No access log (gunicorn.conf.py): gunicorn formats the line even for /dev/null.
    "GUNICORN_ACCESS_LOG": "",
    # No collectstatic for an API bench: WhiteNoise's warning about it is noise here.
    "PYTHONWARNINGS": "ignore:No directory at",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


_django_ready = False


def django_setup(**extra_env: str) -> None:
    """Configure this process like the server (same database, same JWT key) and set Django up."""
    global _django_ready
    if _django_ready:
        return
    os.environ.update(SERVER_ENV)
    os.environ.update(extra_env)
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    _django_ready = True


def database_prepare() -> None:
    """Create the bench database if missing, migrate it (a no-op when it is current) and
    vacuum it.

    Every run deletes and rewrites thousands of rows (accounts, deliveries, jobs), and a
    PostgreSQL with autovacuum off (as on the session machines) never cleans them up nor
    gathers statistics: after an evening of runs the accounts table held 25,864 dead rows
    against 17,840 live and most tables had never been analysed. Production runs autovacuum;
    each section starts from what it would have left (1-2.4 s)."""
    django_setup()
    from django.core.management import call_command
    from django.db import connection

    name = connection.settings_dict["NAME"]
    try:
        connection.ensure_connection()
    except Exception:
        subprocess.run(
            ["createdb", "-h", connection.settings_dict["HOST"] or "127.0.0.1", "-U",
             connection.settings_dict["USER"] or "postgres", name],
            check=True,
        )  # fmt: skip
    call_command("migrate", "--noinput", verbosity=0)
    call_command("createcachetable", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


_ports_given: set[int] = set()


def free_port() -> int:
    """A free loopback port: from BENCH_PORTS ("8152-8159", on a shared machine) if set.

    A port handed out is not handed out again until the range is used up: two asked for in
    a row (an app and its emulator) would otherwise get the same one, both being free yet.
    """
    ports = os.environ.get("BENCH_PORTS", "")
    if ports:
        low, high = (int(p) for p in ports.split("-"))
        for _ in range(2):
            for port in range(low, high + 1):
                if port in _ports_given:
                    continue
                with socket.socket() as sock:
                    try:
                        sock.bind(("127.0.0.1", port))
                    except OSError:
                        continue
                _ports_given.add(port)
                return port
            _ports_given.clear()  # every port was handed out once: the early ones are free again
        raise RuntimeError(f"no free port in BENCH_PORTS={ports}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class Server:
    url: str
    process: subprocess.Popen


@contextmanager
def gunicorn(workers: int = WORKERS, *, threads: int = 0, **extra_env: str) -> Iterator[Server]:
    """A gunicorn on a free loopback port; stopped by its own pid afterwards.

    gunicorn loads ./gunicorn.conf.py. With ``threads`` it keeps the production worker class
    (threaded, a deadline per request) with that many threads per worker; without, sync
    workers, asked for explicitly. The access log is off either way (``SERVER_ENV``): a line
    per request is the operator's choice, not the app's cost.
    """
    port = free_port()
    env = dict(os.environ) | SERVER_ENV | extra_env
    # (gunicorn turns "-k sync" into its threaded worker when the config asks for threads.)
    worker = ["--threads", str(threads)] if threads else ["-k", "sync", "--threads", "1"]
    process = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "hrvstr.wsgi", *worker, "-w", str(workers),
         "-b", f"127.0.0.1:{port}", "--backlog", "2048", "--log-level", "warning",
         "--timeout", "120"],
        cwd=BASE_DIR, env=env, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz")
        yield Server(url=url, process=process)
    finally:
        # The measuring is over: a graceful stop, then whatever is left of the server's own
        # process group is killed 0.3 s later (the requests in flight have finished by then;
        # Python tearing a worker's interpreter down took 0.85 s more, 1.3 s a server, a dozen
        # servers a run). Killing the group at once also keeps the master from logging its
        # workers' deaths, and no pid outside the group can be hit.
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
        with suppress(ProcessLookupError):  # also workers a dead master left behind
            os.killpg(process.pid, signal.SIGKILL)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- CPU time, read from /proc ---------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int:
    """User + system CPU of a process so far, in clock ticks (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 onwards
    return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15


def worker_pids(server: Server) -> list[int]:
    """The gunicorn workers of ``server`` (the master's children)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on this machine (the bench is its only client)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids


@contextmanager
def cpu_seconds(**groups: Callable[[], list[int]]) -> Iterator[dict[str, float]]:
    """CPU seconds each group of processes used during the block: ``{name: seconds}``, filled
    in when the block ends. A process started during the block counts from zero."""
    before = {name: {pid: _cpu_ticks(pid) for pid in pids()} for name, pids in groups.items()}
    used: dict[str, float] = {}
    yield used
    for name, pids in groups.items():
        ticks = sum(_cpu_ticks(pid) - before[name].get(pid, 0) for pid in pids())
        used[name] = ticks / CLOCK_TICKS


# --- load generation -----------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def _wrk_figure(pattern: str, out: str) -> str:
    match = re.search(pattern, out, re.M)
    if not match:
        raise ValueError(f"no {pattern!r} in wrk's output")
    return match.group(1)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    headers: dict[str, str] | None = None,
    lua: str | None = None,
    threads: int = 2,
) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 (ms), non-2xx/3xx count."""
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    with tempfile.TemporaryDirectory() as tmp:
        if lua:
            script = Path(tmp) / "script.lua"
            script.write_text(lua)
            command += ["-s", str(script)]
        command.append(url)
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(_wrk_figure(r"Requests/sec:\s+([\d.]+)", out))
    p50 = _ms(_wrk_figure(r"^\s+50%\s+(\S+)", out))
    p99 = _ms(_wrk_figure(r"^\s+99%\s+(\S+)", out))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": float(_wrk_figure(r"(\d+) requests in", out)),
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "bad": float(bad.group(1)) if bad else 0.0,
        "socket_errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
    }


# Each wrk thread posts its share of the bodies (every n-th, from its own index) once each;
# a connection asking for more after the last gets a GET of /healthz, counted apart (a Lua
# state per thread: nothing is shared between them). wrk runs for its whole -d whatever a
# thread does, so each thread leaves a file when its last answer came, and the caller stops
# wrk (SIGINT: it still prints its figures) once every thread has.
_EACH_ONCE_LUA = r"""
local next_thread = 0
function setup(thread)
  thread:set("index", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  threads = tonumber(args[1])
  path = args[3]
  done_file = args[4] .. "/done-" .. index
  items = {}
  local n = 0
  for line in io.lines(args[2]) do
    if n % threads == index then
      local tab = line:find("\t", 1, true)
      items[#items + 1] = {line:sub(1, tab - 1), line:sub(tab + 1)}
    end
    n = n + 1
  end
  sent, answered = 0, 0
  if #items == 0 then finish() end
end

function finish()
  local marker = io.open(done_file, "w")
  marker:close()
end

function request()
  if sent >= #items then
    return wrk.format("GET", "/healthz")
  end
  sent = sent + 1
  local item = items[sent]
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Stripe-Signature"] = item[1],
  }, item[2])
end

function response(status, headers, body)
  answered = answered + 1
  if answered == #items then finish() end
end
"""


def wrk_post_each(
    url: str, signed: list[tuple[str, bytes]], *, connections: int, threads: int = 2
) -> dict[str, float]:
    """POST each (Stripe-Signature, body) pair once with wrk: events/s over the whole run,
    p50 and p99 (ms), and the non-2xx answers. wrk is C: unlike Python client threads (about
    550 requests/s on this machine), it is not what limits the figure."""
    path = "/" + url.split("/", 3)[3]
    with tempfile.TemporaryDirectory() as tmp:
        script, data = Path(tmp) / "each.lua", Path(tmp) / "bodies.tsv"
        script.write_text(_EACH_ONCE_LUA)
        with data.open("wb") as lines:
            for signature, body in signed:
                lines.write(signature.encode() + b"\t" + body + b"\n")
        command = [
            "wrk", "-t", str(threads), "-c", str(connections), "-d", "600s", "--latency",
            "-s", str(script), url, "--", str(threads), str(data), path, tmp,
        ]  # fmt: skip
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        while len(list(Path(tmp).glob("done-*"))) < threads and process.poll() is None:
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)

    def first(pattern: str) -> str:
        found = re.search(pattern, out, re.M)
        if found is None:
            raise RuntimeError(f"wrk printed no {pattern!r}:\n{out[-2000:]}")
        return found.group(1)

    requests = int(first(r"(\d+) requests in"))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rate": len(signed) / seconds,
        "seconds": seconds,
        "p50": _ms(first(r"^\s+50%\s+(\S+)")),
        "p99": _ms(first(r"^\s+99%\s+(\S+)")),
        "failures": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "extra_requests": requests - len(signed),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# --- the table -----------------------------------------------------------------------------


@dataclass
class Row:
    bench: str
    case: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""


def fmt(value: Any, unit: str = "", digits: int = 0) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        text = f"{value:,.{digits}f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text} {unit}".strip()


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def print_table(rows: list[Row], *, title: str = "") -> str:
    headers = [
        "bench", "case", "measured (median)", "baseline (same run)", "ratio", "target", "verdict",
    ]  # fmt: skip
    data = [[r.bench, r.case, r.value, r.baseline, r.ratio, r.target, r.verdict] for r in rows]
    widths = [max(len(h), *(len(d[i]) for d in data)) if data else len(h) for i, h in
              enumerate(headers)]  # fmt: skip
    lines = []
    if title:
        lines += [title, ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    for d in data:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(d, widths, strict=True)) + " |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def machine() -> str:
    import platform

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load:.2f} at start"
    )
