"""`make run` starts clean: no failed webhook delivery in the offline Stripe from its own
start-up (issue 12, item 8). The catalogue sync emits product and price events; run before the
app listened, every one of them failed (17 on a fresh start)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from hrvstr.testing import full_size_only

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, data: bytes | None = None) -> dict:
    with urllib.request.urlopen(url, data=data, timeout=30) as answer:
        return json.loads(answer.read())


@full_size_only()  # make run started: 13 s
def test_make_run_leaves_no_failed_delivery(tmp_path):
    port, emulator_port = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STRIPE_", "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS"))
    } | {
        "PORT": str(port),
        "STRIPE_EMULATOR_PORT": str(emulator_port),
        "HRVSTR_VAR_DIR": str(tmp_path),  # its own SQLite database and emulator state
        "PYTHONUNBUFFERED": "1",
    }
    log = open(tmp_path / "devserver.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.devserver"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # runserver's reloader child is stopped with its group
    )
    try:
        deadline = time.monotonic() + 180
        while "Serving http" not in (tmp_path / "devserver.log").read_text():
            assert process.poll() is None, (tmp_path / "devserver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "devserver.log").read_text()[-3000:]
            time.sleep(0.5)
        emulator = f"http://127.0.0.1:{emulator_port}/_emulator"
        assert get_json(f"{emulator}/flush", data=b"timeout=30")["drained"]
        deliveries = get_json(f"{emulator}/deliveries")["data"]
        failed = [d for d in deliveries if not d["ok"]]
        print(f"\nmake run start-up: {len(deliveries)} deliveries, {len(failed)} failed")
        # The catalogue sync's product and price events are not among the types the endpoint
        # is subscribed to (billing/webhook_events.py): none is sent, none fails.
        assert failed == [], failed[:3]
        request = urllib.request.Request(
            f"http://127.0.0.1:{emulator_port}/v1/webhook_endpoints",
            headers={"Authorization": "Bearer sk_test_offlineEmulatorKey000000000000"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            [endpoint] = json.loads(answer.read())["data"]
        assert "invoice.paid" in endpoint["enabled_events"]
        assert "*" not in endpoint["enabled_events"]
        assert "product.created" not in endpoint["enabled_events"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
