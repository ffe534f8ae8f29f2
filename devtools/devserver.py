"""``make run``: the app on SQLite and, unless real Stripe keys are set, the offline Stripe.

    python -m devtools.devserver            # PORT (8000) and STRIPE_EMULATOR_PORT (12111) override

The emulator runs as its own process (it imports nothing of ours), keeps its state in
``var/stripe_emulator.json`` and delivers signed webhooks to ``/api/billing/webhook``. The app
is migrated, seeded with demo users (printed) and served; the Stripe catalogue is synced once
the app answers, so the events that sync emits are delivered to a listening app (synced
before, every first start left failed deliveries in the emulator). Ctrl-C stops both.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
EMULATOR_KEY = "sk_test_offlineEmulatorKey000000000000"
EMULATOR_WEBHOOK_SECRET = "whsec_offline_emulator_development"


def _wait_for_port(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _wait_for_health(port: int, timeout: float = 60.0) -> bool:
    """Whether the app answers /healthz within ``timeout`` (runserver takes a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    emulator_port = int(os.environ.get("STRIPE_EMULATOR_PORT", "12111"))
    env = dict(os.environ)
    env.setdefault("DEBUG", "true")
    env.setdefault("SITE_URL", f"http://127.0.0.1:{port}")
    var_dir = Path(env.get("HRVSTR_VAR_DIR") or BASE_DIR / "var")
    var_dir.mkdir(parents=True, exist_ok=True)
    emulator = None
    live = env.get("STRIPE_LIVE_MODE", "").lower() in {"1", "true", "yes", "on"}
    if not env.get("STRIPE_TEST_SECRET_KEY") and not live:
        env.update(
            STRIPE_TEST_SECRET_KEY=EMULATOR_KEY,
            STRIPE_TEST_WEBHOOK_SECRET=EMULATOR_WEBHOOK_SECRET,
            STRIPE_API_HOST=f"http://127.0.0.1:{emulator_port}",
            # One clock: advancing the emulator's moves the app's too (billing/devclock.py).
            STRIPE_FOLLOW_EMULATOR_CLOCK="true",
        )
        # Subscribed to the types we act on or show, as a real endpoint should be.
        events = subprocess.run(
            [sys.executable, "manage.py", "stripe_webhook_events"],
            cwd=BASE_DIR,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        emulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stripe_emulator",
                "--account-name",  # what its Checkout and invoices show as the business
                "HRVSTR",
                "--events",
                events,
                "--port",
                str(emulator_port),
                "--state",
                str(var_dir / "stripe_emulator.json"),
                "--webhook",
                f"http://127.0.0.1:{port}/api/billing/webhook",
                "--webhook-secret",
                EMULATOR_WEBHOOK_SECRET,
            ],
            cwd=BASE_DIR,
        )
        if not _wait_for_port(emulator_port):
            emulator.terminate()
            print(f"The Stripe emulator did not start on port {emulator_port}", file=sys.stderr)
            return 1
        print(f"Offline Stripe on http://127.0.0.1:{emulator_port} (pay with 4242 4242 4242 4242)")
    server = None
    try:
        _manage(env, "migrate", "--noinput")
        _manage(env, "createcachetable")
        _manage(env, "seed_demo")
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"], cwd=BASE_DIR, env=env
        )
        if env.get("STRIPE_TEST_SECRET_KEY") or env.get("STRIPE_LIVE_SECRET_KEY"):
            # After the app listens: the sync's events (products, prices) are then delivered
            # at the first attempt instead of failing while the app is not up yet.
            if not _wait_for_health(port):
                print(f"The app did not answer on port {port}", file=sys.stderr)
                return 1
            _manage(env, "stripe_sync_catalogue")
        print(f"Serving http://127.0.0.1:{port}  (Ctrl-C stops everything)", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        return server.wait()
    except KeyboardInterrupt:
        return 0
    except subprocess.CalledProcessError as exc:
        return exc.returncode
    finally:
        for process in (server, emulator):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    sys.exit(main())
