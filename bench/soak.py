"""Soak: many simulated users against app instances and task workers on one PostgreSQL and the
offline Stripe.

    python bench/soak.py --duration 120 --users 16 --apps 2 --workers 3 --task-workers 3 \
        --kill-worker --kill-app --kill-task-worker --restart-postgres

It builds a throw-away PostgreSQL database, starts the Stripe emulator (HTTP, background
delivery with retries, chaos on: duplicated and shuffled webhooks) and gunicorn, then lets the
users sign up, subscribe through Checkout, buy bundles, spend, unlock, change and cancel plans
and get refunds, while the emulator's clock jumps ahead so renewals fall due. Mid-run it can
SIGKILL a gunicorn worker, a whole app instance (restarted at once, as a supervisor would) and
a task worker (likewise; its job is found stalled and run again), and restart PostgreSQL. The
app instances (``--apps``, users spread over them as behind a load balancer) enqueue webhook
processing; the task workers (``manage.py procrastinate worker``) run it and the scheduled
jobs. Then it lets the webhooks drain (redelivering
what exhausted the emulator's short retry schedule, as Stripe keeps retrying for days), waits
for the queue to empty, and
checks every account against its ledger (``ledger_drift``), against the emulator's Stripe
state (``account_drift``, what ``reconcile_billing`` reports) and every bundle bought or
refunded on Stripe against the ledger. It prints a table; the exit status is 1 on any drift.

Only loopback addresses are used. ``--short`` is the CI mode (about a minute).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SECRET_KEY = "sk_test_soak" + "0123456789abcdefghijklmn"
WEBHOOK_SECRET = "whsec_soak_0123456789abcdef"
PASSWORD = "soak-password-1234"
ACTIONS = ["ai_ticker_analysis", "yahoo_sentiment", "finviz_sentiment", "reddit_sentiment"]
COMPONENTS = ["chart", "scores", "reddit", "insiderTrading", "upcomingEarnings"]
PAID_TIERS = ["pro", "elite", "institutional"]
# Answers a user can legitimately get (business refusals, webhook lag, limits).
EXPECTED = {200, 201, 304, 400, 402, 403, 404, 409, 429}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listening on 127.0.0.1:{port}")


def loopback_only(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise SystemExit(f"refusing a non-loopback target: {url}")


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.by_kind: collections.Counter[str] = collections.Counter()
        self.unexpected: collections.Counter[str] = collections.Counter()
        self.actions: collections.Counter[str] = collections.Counter()

    def record(self, name: str, status: int | str) -> None:
        with self.lock:
            self.requests += 1
            if isinstance(status, int) and status in EXPECTED:
                if status >= 400:
                    self.by_kind[f"{status} {name}"] += 1
            else:
                self.unexpected[f"{status} {name}"] += 1


class User(threading.Thread):
    """One simulated customer, acting at random until told to stop."""

    def __init__(self, index: int, app: str, emulator: str, stats: Stats, stop: threading.Event):
        super().__init__(name=f"user-{index}", daemon=True)
        self.app, self.emulator, self.stats, self.stop = app, emulator, stats, stop
        self.rng = random.Random(index)
        self.email = f"soak{index}-{uuid.uuid4().hex[:6]}@example.com"
        # Behind the (trusted) proxy each user has its own address, so per-address limits
        # apply per user as in production.
        self.http = requests.Session()
        self.http.headers["X-Forwarded-For"] = f"198.18.{index // 250}.{index % 250 + 1}"
        self.access = ""
        self.refresh = ""
        self.bundles: list[str] = []
        self.subscribed = False

    # --- HTTP ---------------------------------------------------------------------------------
    def call(self, method: str, path: str, name: str, **kwargs) -> requests.Response | None:
        headers = kwargs.pop("headers", {})
        if self.access:
            headers["Authorization"] = f"Bearer {self.access}"
        try:
            response = self.http.request(
                method, self.app + path, headers=headers, timeout=30, **kwargs
            )
        except requests.RequestException as exc:
            self.stats.record(name, type(exc).__name__)
            return None
        self.stats.record(name, response.status_code)
        if response.status_code == 401 and self.refresh and name != "refresh":
            self.log_in()
        return response

    def stripe(self, method: str, path: str, **data) -> dict | None:
        try:
            response = requests.request(
                method,
                self.emulator + path,
                data=data,
                headers={"Authorization": f"Bearer {SECRET_KEY}"},
                timeout=30,
            )
        except requests.RequestException as exc:
            self.stats.record(f"stripe {path.split('/')[2]}", type(exc).__name__)
            return None
        self.stats.record(f"stripe {path.split('/')[2]}", response.status_code)
        return response.json() if response.ok else None

    def log_in(self) -> None:
        self.access = ""
        response = self.call(
            "POST", "/api/auth/token", "token", json={"email": self.email, "password": PASSWORD}
        )
        if response is not None and response.status_code == 200:
            tokens = response.json()["data"]
            self.access, self.refresh = tokens["access"], tokens["refresh"]

    # --- what a customer does -------------------------------------------------------------------
    def sign_up(self) -> bool:
        response = self.call(
            "POST",
            "/api/auth/register",
            "register",
            json={"email": self.email, "password": PASSWORD},
        )
        if response is not None and response.status_code == 201:
            tokens = response.json()["data"]
            self.access, self.refresh = tokens["access"], tokens["refresh"]
            return True
        if response is not None and response.status_code == 400:
            self.log_in()  # registered by an earlier attempt whose answer was lost
            return bool(self.access)
        return False

    def checkout(self, body: dict, name: str) -> str | None:
        response = self.call("POST", "/api/billing/create-checkout-session", name, json=body)
        if response is None or response.status_code != 200:
            if response is not None and response.status_code == 409:
                self.subscribed = True
            return None
        session_id = response.json()["sessionId"]
        done = self.stripe(
            "POST", f"/_emulator/checkout/{session_id}/complete", card="4242424242424242"
        )
        return session_id if done else None

    def subscribe(self) -> None:
        tier = self.rng.choice(PAID_TIERS)
        interval = self.rng.choice(["month", "month", "year"])
        if self.checkout({"tier": tier, "interval": interval}, "checkout subscription"):
            self.subscribed = True

    def buy_bundle(self) -> None:
        session_id = self.checkout({"bundle": "credits_250"}, "checkout bundle")
        if session_id:
            self.bundles.append(session_id)

    def refund(self) -> None:
        if not self.bundles:
            return
        session = self.stripe("GET", f"/v1/checkout/sessions/{self.rng.choice(self.bundles)}")
        if session and session.get("payment_intent"):
            amount = self.rng.choice([250, 500, 1000])
            self.stripe(
                "POST", "/v1/refunds", payment_intent=session["payment_intent"], amount=amount
            )

    def act(self) -> None:
        roll = self.rng.random()
        if roll < 0.35:
            self.call(
                "POST",
                "/api/credits/spend",
                "spend",
                json={"action": self.rng.choice(ACTIONS), "quantity": self.rng.randint(1, 4)},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
        elif roll < 0.45:
            self.call(
                "POST",
                "/api/credits/unlock-component",
                "unlock",
                json={"component": self.rng.choice(COMPONENTS)},
            )
        elif roll < 0.60:
            self.call("GET", "/api/subscription/tier-info", "tier-info")
            self.call("GET", "/api/credits/transactions?limit=20", "transactions")
        elif roll < 0.70:
            self.subscribe() if not self.subscribed else self.buy_bundle()
        elif roll < 0.76:
            self.refund()
        elif roll < 0.82 and self.subscribed:
            self.call(
                "POST",
                "/api/billing/change-plan",
                "change-plan",
                json={"tier": self.rng.choice(PAID_TIERS), "interval": "month"},
            )
        elif roll < 0.85 and self.subscribed:
            immediate = self.rng.random() < 0.5
            response = self.call(
                "POST", "/api/billing/cancel-subscription", "cancel", json={"immediate": immediate}
            )
            if response is not None and response.status_code == 200 and immediate:
                self.subscribed = False
        else:
            self.call("GET", "/api/credits/balance", "balance")
        time.sleep(self.rng.uniform(0.02, 0.15))

    def run(self) -> None:
        while not self.stop.is_set() and not self.sign_up():
            time.sleep(0.5)
        while not self.stop.is_set():
            self.act()


# --- the stack ------------------------------------------------------------------------------------


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        base = urlsplit(args.database_url)
        self.db_name = args.db_name or f"hrvstr_soak_{os.getpid()}"
        self.database_url = urlunsplit(base._replace(path=f"/{self.db_name}"))
        self.admin_url = urlunsplit(base._replace(scheme="postgresql", path="/postgres"))
        first = args.app_port or free_port()
        self.app_ports = [first + i if args.app_port else free_port() for i in range(args.apps)]
        self.app_ports[0] = first
        self.emulator_port = args.emulator_port or free_port()
        self.apps = [f"http://127.0.0.1:{port}" for port in self.app_ports]
        self.app = self.apps[0]  # Stripe's webhooks and the redirect URLs go here
        self.emulator = f"http://127.0.0.1:{self.emulator_port}"
        for url in (*self.apps, self.emulator, args.database_url):
            loopback_only(url)
        self.processes: list[subprocess.Popen] = []
        self.gunicorns: list[subprocess.Popen] = []
        self.task_workers: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hrvstr.settings",
            "DEBUG": "false",
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": self.database_url,
            "TRUSTED_PROXY_COUNT": "1",
            "STRIPE_TEST_SECRET_KEY": SECRET_KEY,
            "STRIPE_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_HOST": self.emulator,
            "SITE_URL": self.app,
            "LOG_LEVEL": "WARNING",
            # Webhooks go through the task queue, run by the task workers started below.
            "HRVSTR_TASK_MODE": "queue",
            "DATABASE_POOL": "true",
        }
        self.env.pop("HRVSTR_TESTING", None)
        self.env.pop("REDIS_URL", None) if not args.redis else None

    def sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(statement)

    def manage(self, *args: str) -> None:
        subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {self.db_name}")
        self.sql(f"CREATE DATABASE {self.db_name}")
        self.manage("migrate", "--noinput", "-v0")
        self.manage("createcachetable")
        events = subprocess.run(
            [PYTHON, "manage.py", "stripe_webhook_events"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        log = open(self.args.log_dir / "emulator.log", "w")  # noqa: SIM115 - lives with the process
        self.processes.append(
            subprocess.Popen(
                [
                    PYTHON, "-m", "stripe_emulator", "--account-name", "HRVSTR",
                    "--port", str(self.emulator_port),
                    "--webhook", f"{self.app}/api/billing/webhook",
                    "--webhook-secret", WEBHOOK_SECRET,
                    "--events", events,
                    "--chaos",
                ],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        wait_for_port(self.emulator_port)
        self.manage("stripe_sync_catalogue")
        for index in range(len(self.apps)):
            self.gunicorns.append(self.start_app(index))
        for index in range(self.args.task_workers):
            self.task_workers.append(self.start_task_worker(index))
        for port in self.app_ports:
            wait_for_port(port)

    def start_app(self, index: int) -> subprocess.Popen:
        log = open(self.args.log_dir / f"gunicorn-{index}.log", "a")  # noqa: SIM115
        process = subprocess.Popen(
            [
                # The production entry (gunicorn.conf.py: threaded workers, read deadline).
                PYTHON, "-m", "gunicorn", "hrvstr.wsgi", "--config", "gunicorn.conf.py",
                "--workers", str(self.args.workers),
                "--bind", f"127.0.0.1:{self.app_ports[index]}",
                "--timeout", "30",
                "--graceful-timeout", "5",
            ],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def start_task_worker(self, index: int) -> subprocess.Popen:
        log = open(self.args.log_dir / f"task-worker-{index}.log", "a")  # noqa: SIM115
        process = subprocess.Popen(
            [
                PYTHON, "manage.py", "procrastinate", "worker",
                "--queues=webhooks-priority,webhooks,scheduled",
                "--concurrency", str(self.args.task_concurrency),
                "--name", f"soak-{index}",
            ],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.processes.append(process)
        return process

    @property
    def gunicorn(self) -> subprocess.Popen:
        return self.gunicorns[0]

    def kill_app(self) -> str:
        """SIGKILL a whole app instance (master and workers), then start it again."""
        index = len(self.gunicorns) - 1
        master = self.gunicorns[index]
        children = self.children(master.pid)
        for pid in [master.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        master.wait()
        self.gunicorns[index] = self.start_app(index)
        return (
            f"SIGKILL app instance {index} (gunicorn {master.pid} + {len(children)} workers), "
            "restarted"
        )

    def kill_task_worker(self) -> str:
        """SIGKILL a task worker (its job stays 'doing' until found stalled), start another."""
        if not self.task_workers:
            return "no task worker"
        index = random.randrange(len(self.task_workers))
        victim = self.task_workers[index]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        self.task_workers[index] = self.start_task_worker(index)
        return f"SIGKILL task worker {victim.pid}, restarted"

    def supervise(self) -> list[str]:
        """Start again any task worker that exited (e.g. on losing PostgreSQL), as Docker's
        restart policy would."""
        restarted = []
        for index, worker in enumerate(self.task_workers):
            if worker.poll() is not None:
                self.task_workers[index] = self.start_task_worker(index)
                restarted.append(
                    f"task worker {worker.pid} exited ({worker.returncode}), restarted"
                )
        return restarted

    def children(self, parent: int) -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
        return found

    def jobs_waiting(self) -> collections.Counter:
        import psycopg

        with psycopg.connect(self.database_url.replace("postgres://", "postgresql://", 1)) as db:
            rows = db.execute(
                "SELECT status::text, count(*) FROM procrastinate_jobs"
                " WHERE task_name = 'billing.process_webhook' GROUP BY status"
            ).fetchall()
        return collections.Counter(dict(rows))

    def workers(self) -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.gunicorn.pid:
                found.append(int(stat.parent.name))
        return found

    def kill_worker(self) -> str:
        workers = self.workers()
        if not workers:
            return "no worker found"
        victim = random.choice(workers)
        os.kill(victim, signal.SIGKILL)
        return f"SIGKILL gunicorn worker {victim}"

    def restart_postgres(self) -> str:
        started = time.monotonic()
        version = ""
        try:
            version = sorted(os.listdir("/etc/postgresql"))[-1]
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                check=True,
                capture_output=True,
                timeout=120,
            )
        except (OSError, IndexError, subprocess.SubprocessError) as exc:
            # A stop that outlasts pg_ctl's 60 s wait fails the restart and leaves the server
            # down (seen once in CI on 2026-12-03): start it, so the run can finish and report.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                if version:
                    subprocess.run(
                        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                        capture_output=True,
                        timeout=120,
                    )
            # Shown in the table (and the run goes on): a fault we could not inject is not
            # a fault survived.
            return f"PostgreSQL NOT restarted ({type(exc).__name__}: {exc})"
        return f"PostgreSQL {version} restarted in {time.monotonic() - started:.1f}s"

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        if not self.args.keep:
            try:
                self.sql(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")
            except Exception as exc:
                print(f"could not drop {self.db_name}: {exc}", file=sys.stderr)


def emulator_call(stack: Stack, method: str, path: str, **data) -> dict:
    response = requests.request(
        method,
        stack.emulator + path,
        data=data,
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
        timeout=120,
    )
    response.raise_for_status()
    return response.json()


def drain(stack: Stack) -> int:
    """Let deliveries finish; redeliver events that never got a 2xx (Stripe retries for days)."""
    redelivered = 0
    for _ in range(5):
        # everything: chaos holds some deliveries back by up to 3 days of emulator time
        emulator_call(stack, "POST", "/_emulator/flush", timeout=90, everything="true")
        deliveries = emulator_call(stack, "GET", "/_emulator/deliveries")["data"]
        ok = {d["event"] for d in deliveries if d["ok"]}
        missing = {d["event"] for d in deliveries} - ok
        if not missing:
            return redelivered
        for event_id in sorted(missing):
            emulator_call(stack, "POST", "/_emulator/deliveries/redeliver", event=event_id)
            redelivered += 1
    return redelivered


def drain_queue(stack: Stack, timeout: float = 300) -> collections.Counter:
    """Wait until no webhook job waits or runs (a killed worker's job: once found stalled)."""
    deadline = time.monotonic() + timeout
    while True:
        stack.supervise()
        counts = stack.jobs_waiting()
        if not counts.get("todo") and not counts.get("doing"):
            return counts
        if time.monotonic() > deadline:
            print(f"queue not drained after {timeout:.0f} s: {dict(counts)}", file=sys.stderr)
            return counts
        time.sleep(1)


def verify(stack: Stack) -> dict[str, int]:
    """Every account against its ledger and against the emulator's Stripe state."""
    os.environ.update(stack.env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connections

    from activities.models import LedgerEntry, LedgerKind
    from billing.reconcile import account_drift
    from subscriptions.models import CreditAccount
    from subscriptions.selectors import ledger_drift

    connections.close_all()
    state = emulator_call(stack, "GET", "/_emulator/state")
    objects, order = state["objects"], state["order"]
    sessions = [objects[i] for i in order.get("checkout.session", [])]
    charges = [objects[i] for i in order.get("charge", [])]
    found: collections.Counter[str] = collections.Counter()
    for account in CreditAccount.objects.select_related("user"):
        found["accounts"] += 1
        if ledger_drift(account=account):
            found["ledger drift"] += 1
            print(f"LEDGER DRIFT {account.user.email}: {ledger_drift(account=account)}")
        if account.stripe_customer_id:
            drift, _ = account_drift(account)
            if drift:
                found["stripe drift"] += 1
                for item in drift:
                    print(
                        f"STRIPE DRIFT {item.email}: {item.field} {item.ours!r} vs {item.stripe!r}"
                    )
    # Bundles: one purchase row per paid bundle session, and the clawbacks refunds call for.
    paid = {
        s["id"]: s
        for s in sessions
        if s.get("mode") == "payment" and s.get("payment_status") == "paid"
    }
    purchases = {e.source: e for e in LedgerEntry.objects.filter(kind=LedgerKind.PURCHASE)}
    found["bundles paid on stripe"] = len(paid)
    found["bundle purchases missing"] = len(set(paid) - set(purchases))
    found["bundle purchases unexplained"] = len(set(purchases) - set(paid))
    refunded = {c["payment_intent"]: c for c in charges if c.get("amount_refunded")}
    for session_id, session in paid.items():
        charge = refunded.get(session.get("payment_intent"))
        purchase = purchases.get(session_id)
        if charge is None or purchase is None:
            continue
        found["bundles refunded"] += 1
        want = (
            purchase.purchased_delta
            * min(charge["amount_refunded"], charge["amount"])
            // charge["amount"]
        )
        got = sum(
            e.details.get("requested", 0)
            for e in LedgerEntry.objects.filter(kind=LedgerKind.CLAWBACK, source=session_id)
        )
        if got != want:
            found["clawback mismatches"] += 1
            print(f"CLAWBACK {session_id}: requested {got}, refunds call for {want}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120, help="seconds of traffic")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers per app")
    parser.add_argument("--apps", type=int, default=2, help="app instances (gunicorn masters)")
    parser.add_argument("--task-workers", type=int, default=2, help="procrastinate workers")
    parser.add_argument("--task-concurrency", type=int, default=2, help="jobs per task worker")
    parser.add_argument("--kill-app", action="store_true", help="SIGKILL an app instance")
    parser.add_argument(
        "--kill-task-worker", action="store_true", help="SIGKILL a task worker mid-run"
    )
    parser.add_argument("--db-name", help="the throw-away database (default hrvstr_soak_<pid>)")
    parser.add_argument("--app-port", type=int, help="first app port (default: free ports)")
    parser.add_argument("--emulator-port", type=int, help="default: a free port")
    parser.add_argument("--clock-days", type=int, default=8, help="emulator days per tick")
    parser.add_argument("--clock-every", type=float, default=6, help="seconds between ticks")
    parser.add_argument("--kill-worker", action="store_true", help="SIGKILL a worker mid-run")
    parser.add_argument("--restart-postgres", action="store_true", help="restart PG mid-run")
    parser.add_argument("--short", action="store_true", help="CI: 45 s, 8 users, both faults")
    parser.add_argument("--redis", action="store_true", help="keep REDIS_URL for the cache")
    parser.add_argument("--keep", action="store_true", help="keep the soak database")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("SOAK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server to create the throw-away soak database on",
    )
    parser.add_argument("--log-dir", type=Path, default=ROOT / "var" / "soak")
    args = parser.parse_args(argv)
    if args.short:
        args.duration, args.users = min(args.duration, 45), min(args.users, 8)
        args.kill_worker = args.restart_postgres = args.kill_app = args.kill_task_worker = True
        args.clock_every = 4
    args.log_dir.mkdir(parents=True, exist_ok=True)

    stack = Stack(args)
    stats = Stats()
    stop = threading.Event()
    faults: list[str] = []
    ticks = 0
    started = time.monotonic()
    try:
        stack.start()
        setup = time.monotonic() - started
        users = [
            User(i, stack.apps[i % len(stack.apps)], stack.emulator, stats, stop)
            for i in range(args.users)
        ]
        for user in users:
            user.start()
        begin = time.monotonic()
        next_tick = begin + args.clock_every
        pending_faults = []
        if args.kill_worker:
            pending_faults.append((begin + args.duration * 0.35, stack.kill_worker))
        if args.kill_task_worker:
            pending_faults.append((begin + args.duration * 0.45, stack.kill_task_worker))
        if args.kill_app:
            pending_faults.append((begin + args.duration * 0.5, stack.kill_app))
        if args.restart_postgres:
            pending_faults.append((begin + args.duration * 0.55, stack.restart_postgres))
        while (now := time.monotonic()) < begin + args.duration:
            for due, fault in list(pending_faults):
                if now >= due:
                    pending_faults.remove((due, fault))
                    faults.append(f"t+{now - begin:.0f}s {fault()}")
            faults.extend(f"t+{now - begin:.0f}s {note}" for note in stack.supervise())
            if now >= next_tick:
                try:
                    emulator_call(stack, "POST", "/_emulator/clock/advance", days=args.clock_days)
                    ticks += 1
                except requests.RequestException as exc:
                    faults.append(f"clock tick failed: {exc}")
                next_tick = now + args.clock_every
            time.sleep(0.2)
        stop.set()
        for user in users:
            user.join(timeout=60)
        traffic = time.monotonic() - begin
        redelivered = drain(stack)
        drain_started = time.monotonic()
        jobs = drain_queue(stack)
        queue_drain = time.monotonic() - drain_started
        deliveries = emulator_call(stack, "GET", "/_emulator/deliveries")["data"]
        found = verify(stack)
    finally:
        stop.set()
        stack.stop()

    per_event = collections.Counter(d["event"] for d in deliveries)
    ok_per_event = collections.Counter(d["event"] for d in deliveries if d["ok"])
    duplicates = sum(1 for n in ok_per_event.values() if n > 1)
    bundles = f"{found['bundles paid on stripe']} / {found['bundles refunded']}"
    purchases = f"{found['bundle purchases missing']} / {found['bundle purchases unexplained']}"
    drift = (
        found["ledger drift"]
        + found["stripe drift"]
        + found["bundle purchases missing"]
        + found["bundle purchases unexplained"]
        + found["clawback mismatches"]
    )
    rows = [
        ("setup (db, migrate, emulator, gunicorn)", f"{setup:.0f} s"),
        (
            "traffic",
            f"{traffic:.0f} s, {args.users} users, {args.apps} app instances x "
            f"{args.workers} gunicorn workers, {args.task_workers} task workers x "
            f"{args.task_concurrency}",
        ),
        ("requests (app + emulator)", stats.requests),
        ("  per second", f"{stats.requests / max(traffic, 1):.0f}"),
        ("emulator clock ticks", f"{ticks} x {args.clock_days} days"),
    ]
    rows += [(f"  refused as expected: {kind}", n) for kind, n in sorted(stats.by_kind.items())]
    rows += [(f"  errors: {kind}", n) for kind, n in sorted(stats.unexpected.items())]
    rows += [
        ("webhook events", len(per_event)),
        ("webhook deliveries", len(deliveries)),
        ("  acknowledged more than once (duplicates)", duplicates),
        ("  retries (attempt > 1)", sum(1 for d in deliveries if d["attempt"] > 1)),
        ("  failed attempts (non-2xx / no answer)", sum(1 for d in deliveries if not d["ok"])),
        ("  redelivered after the retries ran out", redelivered),
        ("  events never acknowledged", len(set(per_event) - set(ok_per_event))),
        ("webhook jobs succeeded / failed", f"{jobs['succeeded']} / {jobs['failed']}"),
        ("  left waiting or running after the drain", jobs.get("todo", 0) + jobs.get("doing", 0)),
        ("  queue drained in", f"{queue_drain:.0f} s"),
        ("faults injected", "; ".join(faults) or "none"),
        ("accounts checked", found["accounts"]),
        ("bundles paid on Stripe / refunded", bundles),
        ("ledger drift (ledger_drift)", found["ledger drift"]),
        ("Stripe drift (reconcile)", found["stripe drift"]),
        ("bundle purchases missing / unexplained", purchases),
        ("clawback mismatches", found["clawback mismatches"]),
        ("DRIFT FOUND", drift),
    ]  # fmt: skip
    width = max(len(str(label)) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    never_acknowledged = len(set(per_event) - set(ok_per_event))
    stuck = jobs.get("todo", 0) + jobs.get("doing", 0) + jobs.get("failed", 0)
    return 1 if drift or never_acknowledged or stuck else 0


if __name__ == "__main__":
    sys.exit(main())
