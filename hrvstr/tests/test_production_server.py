"""The production entry (gunicorn with gunicorn.conf.py) against slow and stalled clients
(issue 12, item 1).

The real server is started on a free loopback port, exactly as the Dockerfile runs it (the
configuration file is the one gunicorn loads from the project directory), with 2 workers of
4 threads. Six clients then send their requests one byte every half second (four their
bodies, two their headers), more clients than workers; the health check must keep
answering within a second, and each slow client is cut off at the read deadline.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hrvstr.testing import full_size_only

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# One gunicorn (migrated, started: ~10 s) per run, not one per xdist worker.
pytestmark = [
    pytest.mark.xdist_group("production_server"),
    full_size_only(),  # gunicorn started twice
]
WORKERS, THREADS, READ_TIMEOUT = 2, 4, 4
SLOW_BODIES, SLOW_HEADERS = 4, 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = dict(os.environ) | {
        "DJANGO_SETTINGS_MODULE": "hrvstr.settings",
        "DEBUG": "false",
        "HRVSTR_TESTING": "false",
        "SECRET_KEY": "test-only-" + "x" * 40,
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "HRVSTR_VAR_DIR": str(tmp),
        "ALLOWED_HOSTS": "billing.example.com,127.0.0.1",
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_THREADS": str(THREADS),
        "GUNICORN_REQUEST_READ_TIMEOUT": str(READ_TIMEOUT),
        "GUNICORN_LOG_LEVEL": "warning",
    }
    env.pop("REDIS_URL", None)
    for command in (["migrate", "--noinput"], ["createcachetable"]):  # as the Dockerfile does
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=BASE_DIR, env=env, check=True,
            capture_output=True,
        )  # fmt: skip
    log = open(tmp / "gunicorn.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "hrvstr.wsgi", "--bind", f"127.0.0.1:{port}"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if health(port, timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("gunicorn did not start: " + (tmp / "gunicorn.log").read_text())
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def health(port: int, timeout: float = 5.0) -> tuple[int, float]:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        status = connection.getresponse().status
    finally:
        connection.close()
    return status, time.monotonic() - started


class SlowClient(threading.Thread):
    """Sends a request one byte every ``every`` seconds and records how it ended."""

    def __init__(self, port: int, *, slow_headers: bool, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.slow_headers, self.every = slow_headers, every
        self.outcome = "still sending"
        self.ended_after: float | None = None

    def run(self) -> None:
        started = time.monotonic()
        headers = (
            b"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        fast, slow = (b"", headers + b"x" * 1000) if self.slow_headers else (headers, b"x" * 1000)
        answer = b""
        try:
            self.sock.sendall(fast)
            for byte in slow:
                self.sock.sendall(bytes([byte]))
                # Between bytes, listen: the server's answer (or its closing) ends the attack.
                self.sock.settimeout(self.every)
                try:
                    answer = self.sock.recv(200)
                    break
                except TimeoutError:
                    continue
        except OSError:
            pass  # reset by the server: it closed the connection
        self.outcome = answer.split(b"\r\n", 1)[0].decode() or "closed"
        self.ended_after = time.monotonic() - started
        self.sock.close()


def test_health_checks_answer_within_a_second_while_slow_clients_hold_connections(server):
    clients = [SlowClient(server, slow_headers=False) for _ in range(SLOW_BODIES)]
    clients += [SlowClient(server, slow_headers=True) for _ in range(SLOW_HEADERS)]
    assert len(clients) > WORKERS
    for client in clients:
        client.start()
    time.sleep(0.5)  # every slow client is now inside a worker thread
    latencies = []
    for _ in range(10):
        started = time.monotonic()
        try:
            status, seconds = health(server, timeout=3)
        except TimeoutError:
            status, seconds = 0, time.monotonic() - started  # no answer at all
        assert status in {0, 200}
        latencies.append(seconds)
        time.sleep(0.15)
    during = {client.outcome for client in clients}
    for client in clients:
        client.join(timeout=READ_TIMEOUT + 10)
    print(
        f"\n{len(clients)} slow clients ({SLOW_BODIES} bodies, {SLOW_HEADERS} headers) on "
        f"{WORKERS} workers x {THREADS} threads: /healthz max {max(latencies) * 1000:.0f} ms, "
        f"median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms over {len(latencies)}; "
        f"slow clients: {sorted({c.outcome for c in clients})}, ended after "
        f"{min(c.ended_after or 99 for c in clients):.1f}-"
        f"{max(c.ended_after or 99 for c in clients):.1f} s"
    )
    # All of that happened while every slow client was still holding its connection.
    assert during == {"still sending"}
    assert max(latencies) < 1.0, latencies
    # Each was cut off at the read deadline: a slow body gets 408, slow headers a closed socket.
    for client in clients:
        assert client.ended_after is not None and client.ended_after < READ_TIMEOUT + 3
    assert {c.outcome for c in clients[:SLOW_BODIES]} == {"HTTP/1.1 408 Request Timeout"}
    assert {c.outcome for c in clients[SLOW_BODIES:]} <= {"closed", "HTTP/1.1 408 Request Timeout"}


def test_an_oversized_body_is_refused_unread(server):
    sock = socket.create_connection(("127.0.0.1", server), timeout=5)
    sock.sendall(
        b"POST /api/auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{"
    )
    assert sock.recv(200).startswith(b"HTTP/1.1 413")
    sock.close()


def test_oversized_headers_are_refused(server):
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
    connection.putrequest("GET", "/healthz")
    connection.putheader("X-Big", "x" * 9000)
    connection.endheaders()
    assert connection.getresponse().status in {400, 431}
    connection.close()


def test_the_dockerfile_runs_this_configuration():
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    assert "gunicorn hrvstr.wsgi --config gunicorn.conf.py" in dockerfile


def test_the_dockerfile_health_check_passes_with_production_settings(server):
    # Production settings redirect plain HTTP to HTTPS and refuse unknown hosts; the
    # container's health check must get through both.
    line = next(
        line
        for line in (BASE_DIR / "Dockerfile").read_text().splitlines()
        if line.startswith("HEALTHCHECK")
    )
    command = line.removeprefix("HEALTHCHECK CMD ").removesuffix(" || exit 1")
    env = dict(os.environ) | {"PORT": str(server), "ALLOWED_HOSTS": "billing.example.com"}
    result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()[-500:]
