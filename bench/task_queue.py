"""Webhooks on the task queue (issue 14), with the offline Stripe answering in 150 ms.

In one run, on the same events (Checkout subscriptions, first and renewal ``invoice.paid``,
the renewal's subscription update, a bundle bought through Checkout):

- baseline: the same gunicorn (8 sync workers) processing each delivery in its request
  (``HRVSTR_TASK_MODE=inline``, issue 7's design): first deliveries per second;
- intake: the endpoint in queue mode stores and enqueues (no Stripe call): events per second;
- processing: ``--task-workers`` Procrastinate workers (``--task-concurrency`` jobs each) drain
  the burst: events per second, against the baseline;
- time-to-credits: a bundle's ``checkout.session.completed`` posted right after the burst was
  taken in, through the priority lane: seconds until its credits are in the ledger. (The
  success page does not wait even that long: it applies its own session, billing/
  checkout_return.py.)

    python bench/task_queue.py [--quick]     (BENCH_STRIPE_LATENCY_MS, default 150)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BASE_DIR,
    PYTHON,
    SERVER_ENV,
    Row,
    database_prepare,
    django_setup,
    fmt,
    free_port,
    gunicorn,
    log,
    print_table,
    verdict,
)
from bench.webhooks import database_reset, post_all, wait_port, world_build

LATENCY_MS = float(os.environ.get("BENCH_STRIPE_LATENCY_MS", "150"))


def jobs_left() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'billing.process_webhook'"
            " AND status IN ('todo', 'doing')"
        )
        return cursor.fetchone()[0]


def jobs_failed() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'billing.process_webhook'"
            " AND status = 'failed'"
        )
        return cursor.fetchone()[0]


def queue_clear() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE procrastinate_jobs RESTART IDENTITY CASCADE")


def purchased(customer_id: str) -> int:
    from subscriptions.models import CreditAccount

    return (
        CreditAccount.objects.filter(stripe_customer_id=customer_id)
        .values_list("purchased_balance", flat=True)
        .first()
        or 0
    )


def run(quick: bool = False) -> list[Row]:
    database_prepare()
    customers = int(os.environ.get("BENCH_QUEUE_CUSTOMERS", 100 if quick else 2_000))
    state, events = world_build(customers, customers * 5)
    # The Checkout watched during the burst: the last bundle purchase, held out of the burst.
    probe = next(
        e
        for e in reversed(events)
        if e["type"] == "checkout.session.completed" and e["data"]["object"]["mode"] == "payment"
    )
    burst = [e for e in events if e is not probe]
    baseline_n = int(os.environ.get("BENCH_QUEUE_BASELINE_EVENTS", 150 if quick else 1_000))
    task_workers = int(os.environ.get("BENCH_TASK_WORKERS", "4"))
    concurrency = int(os.environ.get("BENCH_TASK_CONCURRENCY", "8"))
    body = lambda e: json.dumps(e, separators=(",", ":")).encode()  # noqa: E731

    port = free_port()
    emulator = subprocess.Popen(
        [PYTHON, str(BASE_DIR / "bench" / "webhooks.py"), "--serve-emulator", str(state),
         str(port), str(LATENCY_MS / 1000)],
        cwd=BASE_DIR,
    )  # fmt: skip
    stripe_host = f"http://127.0.0.1:{port}"
    workers: list[subprocess.Popen] = []
    try:
        wait_port(port, timeout=120)
        # Baseline: processing in the request, 8 sync workers (issue 7's set-up).
        database_reset(events)
        with gunicorn(8, STRIPE_API_HOST=stripe_host, HRVSTR_TASK_MODE="inline") as server:
            for _ in range(16):
                urllib.request.urlopen(server.url + "/healthz").read()
            inline = post_all(
                server.url + "/api/billing/webhook", [body(e) for e in burst[:baseline_n]]
            )
        log(f"queue bench: inline baseline {inline}")

        # The queue: intake with no worker running, then the workers drain it.
        database_reset(events)
        queue_clear()
        with gunicorn(8, STRIPE_API_HOST=stripe_host, HRVSTR_TASK_MODE="queue") as server:
            for _ in range(16):
                urllib.request.urlopen(server.url + "/healthz").read()
            intake = post_all(server.url + "/api/billing/webhook", [body(e) for e in burst])
            log(f"queue bench: intake {intake}")
            queued = jobs_left()
            env = (
                dict(os.environ)
                | SERVER_ENV
                | {
                    "STRIPE_API_HOST": stripe_host,
                    "HRVSTR_TASK_MODE": "queue",
                }
            )
            started = time.perf_counter()
            for index in range(task_workers):
                command = [
                    PYTHON, "manage.py", "procrastinate", "worker",
                    "--queues=webhooks-priority,webhooks",
                    "--concurrency", str(concurrency), "--name", f"bench-{index}",
                ]  # fmt: skip
                workers.append(subprocess.Popen(command, cwd=BASE_DIR, env=env))
            # A customer pays for a bundle while the burst is being worked through.
            customer = probe["data"]["object"]["customer"]
            before = purchased(customer)
            time.sleep(1.0)
            probe_posted = time.perf_counter()
            post_all(server.url + "/api/billing/webhook", [body(probe)])
            time_to_credits = float("nan")
            while True:
                if time_to_credits != time_to_credits and purchased(customer) > before:
                    time_to_credits = time.perf_counter() - probe_posted
                left = jobs_left()
                if left == 0:
                    break
                time.sleep(0.2)
            drained = time.perf_counter() - started
            if time_to_credits != time_to_credits and purchased(customer) > before:
                time_to_credits = drained
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        emulator.terminate()
        emulator.wait(timeout=10)
    failed = jobs_failed()
    processing = (queued + 1) / drained
    ratio = processing / inline["rate"]
    scale = "" if not quick else " (quick: scaled down)"
    return [
        Row(
            "6 queue",
            f"first deliveries processed in the request, {baseline_n:,} events, "
            f"Stripe {LATENCY_MS:.0f} ms{scale}",
            fmt(inline["rate"], "events/s"),
            f"p50 {inline['p50']:.0f} ms, p99 {inline['p99']:.0f} ms",
            f"{inline['failures']} failed",
            "(baseline)",
        ),
        Row(
            "6 queue",
            f"intake: {len(burst):,} deliveries stored and enqueued",
            fmt(intake["rate"], "events/s"),
            f"p50 {intake['p50']:.0f} ms, p99 {intake['p99']:.0f} ms",
            f"{intake['failures']} failed",
            ">= 500 events/s",
            verdict(intake["rate"] >= 500 and intake["failures"] == 0),
        ),
        Row(
            "6 queue",
            f"processing: {queued + 1:,} jobs, {task_workers} workers x {concurrency}",
            fmt(processing, "events/s", 1),
            fmt(inline["rate"], "events/s (in the request)", 1),
            f"{ratio:.1f}x",
            ">= 2x",
            verdict(ratio >= 2 and failed == 0),
        ),
        Row(
            "6 queue",
            "burst drained in; a Checkout's credits during it (priority lane); jobs failed",
            f"{drained:.0f} s; {time_to_credits:.1f} s; {failed}",
            "",
            "",
            "0 failed",
            verdict(failed == 0),
        ),
    ]


if __name__ == "__main__":
    django_setup()
    print_table(run(quick="--quick" in sys.argv))
    os._exit(0)
