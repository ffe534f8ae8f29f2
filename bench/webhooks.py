"""Webhook ingestion: a burst of signed events, then the same burst again (duplicates).

The offline Stripe builds the world in this process (customers subscribing to Pro, buying a
credit bundle through Checkout, then a month passing so every subscription renews); its state
is saved and served by ``python -m stripe_emulator`` so that dj-stripe, in the gunicorn
workers, re-fetches every object over HTTP as it would from Stripe. The events it emitted for
subscriptions, invoices and Checkout (renewals and purchases) are signed with the endpoint's
secret and posted to ``/api/billing/webhook`` by CLIENTS threads as fast as the server takes
them; then all of them again. The second pass must change nothing: the ledger, the activity
feed and every account are compared before and after.

    python bench/webhooks.py [--quick]
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BASE_DIR,
    PYTHON,
    STRIPE_KEY,
    WEBHOOK_SECRET,
    Row,
    database_prepare,
    django_setup,
    fmt,
    free_port,
    gunicorn,
    log,
    percentile,
    print_table,
    verdict,
)

CLIENTS = 16
DAY = 86400

STATE_DIR = BASE_DIR / "var" / "bench"


def events_select(emitted: list[dict]) -> list[dict]:
    """Five events per customer, in the order Stripe sent them: the subscription created, its
    first and its renewal invoice paid, the bundle's Checkout completed (a purchase), and the
    subscription updated by the renewal. The rest (charges, payment intents, subscription-mode
    Checkout) would only add more of the same dj-stripe work."""
    last_update: dict[str, int] = {}
    for index, event in enumerate(emitted):
        if event["type"] == "customer.subscription.updated":
            last_update[event["data"]["object"]["id"]] = index
    chosen = []
    for index, event in enumerate(emitted):
        kind, obj = event["type"], event["data"]["object"]
        if (
            kind in ("customer.subscription.created", "invoice.paid")
            or (kind == "checkout.session.completed" and obj.get("mode") == "payment")
            or (kind == "customer.subscription.updated" and last_update[obj["id"]] == index)
        ):
            chosen.append(event)
    return chosen


def world_build(customers: int, events_wanted: int) -> tuple[Path, list[dict]]:
    """The emulator's state file and the events to deliver (cached per size: it is slow)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    state = STATE_DIR / f"stripe-{customers}.json"
    cache = STATE_DIR / f"events-{customers}.json"
    if state.exists() and cache.exists():
        return state, json.loads(cache.read_text())[:events_wanted]
    import stripe

    from billing.catalogue_sync import catalogue_sync
    from stripe_emulator import Emulator
    from stripe_emulator.client import EmulatorHTTPClient

    started = time.perf_counter()
    emulator = Emulator(delivery="sync")
    previous = stripe.default_http_client
    stripe.default_http_client = EmulatorHTTPClient(emulator)
    try:
        prices = {synced.lookup_key: synced.price_id for synced in catalogue_sync()}
        for n in range(customers):
            customer = stripe.Customer.create(
                api_key=STRIPE_KEY,
                email=f"wh-{n}@bench.example",
                metadata={"bench_customer": str(n)},
            )
            # Subscriptions start through Checkout, as ours do; then a bundle is bought.
            for mode, lookup_key in (("subscription", "pro_monthly"), ("payment", "credits_250")):
                session = stripe.checkout.Session.create(
                    api_key=STRIPE_KEY,
                    mode=mode,
                    customer=customer.id,
                    line_items=[{"price": prices[lookup_key], "quantity": 1}],
                    success_url="http://127.0.0.1/ok",
                    cancel_url="http://127.0.0.1/cancel",
                )
                emulator.complete_checkout(session.id)
        emulator.advance_clock(32 * DAY)  # every subscription renews
        events = events_select(emulator.events())
        emulator.store.save(str(state))
    finally:
        stripe.default_http_client = previous
        emulator.close()
    cache.write_text(json.dumps(events))
    log(f"webhooks: built {customers} customers, {len(events)} events in "
        f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    return state, events[:events_wanted]


def database_reset(events: list[dict]) -> list:
    """Forget earlier runs (their Stripe mirror and their users) and link each customer to a
    fresh user.

    The emulator's ids are the same every run (a fixed seed), and so are the ledger keys our
    receivers derive from them (``invoice:<id>``, ``checkout:<id>``): an earlier run's rows
    would turn this run's first deliveries into replays. The ledger is append-only in the app;
    this is the bench's own database, reset by the bench.
    """
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from activities.models import Activity, LedgerEntry
    from billing.owner_account import shared_forget
    from subscriptions.models import CreditAccount
    from subscriptions.periods import add_months

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(_djstripe_tables()) + " CASCADE")
    shared_forget()  # the account rows went without a signal
    earlier = get_user_model().objects.filter(username__startswith="wh-")
    Activity.objects.filter(user__in=earlier).delete()
    LedgerEntry.objects.filter(user__in=earlier).delete()
    CreditAccount.objects.filter(user__in=earlier).delete()
    earlier.delete()
    customers = sorted(
        {e["data"]["object"].get("customer") for e in events} - {None}
    )  # fmt: skip
    user_model = get_user_model()
    stamp = int(time.time() * 1000)
    users = user_model.objects.bulk_create(
        [
            user_model(username=f"wh-{stamp}-{c}", email=f"wh-{stamp}-{c}@bench.example")
            for c in customers
        ]
    )
    now = timezone.now()
    CreditAccount.objects.bulk_create(
        [
            CreditAccount(
                user=user,
                stripe_customer_id=customer,
                period_start=now,
                period_end=add_months(now, 1),
                period_anchor=now,
            )
            for user, customer in zip(users, customers, strict=True)
        ]
    )
    return users


def effects(users: list) -> dict[str, int]:
    """What the events changed for these users: rows and a fingerprint of every account."""
    from django.db.models import Count, Sum

    from activities.models import Activity, LedgerEntry
    from subscriptions.models import CreditAccount

    accounts = CreditAccount.objects.filter(user__in=users).aggregate(
        versions=Sum("version"), purchased=Sum("purchased_balance"), paid=Count("pk")
    )
    return {
        "ledger": LedgerEntry.objects.filter(user__in=users).count(),
        "activities": Activity.objects.filter(user__in=users).count(),
        "account_versions": accounts["versions"] or 0,
        "purchased": accounts["purchased"] or 0,
        "pro_accounts": CreditAccount.objects.filter(user__in=users, tier="pro").count(),
    }


def post_all(url: str, bodies: list[bytes]) -> dict:
    """POST every body once from CLIENTS threads; events/s, p50, p99 and failures."""
    from urllib.parse import urlsplit

    from stripe_emulator.webhooks import sign

    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    host, port, path = parts.hostname, parts.port, parts.path or "/api/billing/webhook"
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))

    def client(_: int) -> None:
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            body = bodies[index]
            # Signed at sending time, as Stripe does (the tolerance is five minutes).
            headers = {
                "Content-Type": "application/json",
                "Stripe-Signature": sign(body.decode(), WEBHOOK_SECRET, int(time.time())),
            }
            start = time.perf_counter()
            connection = http.client.HTTPConnection(host, port, timeout=120)
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except OSError:
                status = 0
            finally:
                connection.close()
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed)
                if status != 200:
                    failures.append(status)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    seconds = time.perf_counter() - start
    return {
        "rate": len(bodies) / seconds,
        "seconds": seconds,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "failures": len(failures),
        "statuses": sorted(set(failures)),
    }


def wait_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# What a mirror stored, by Stripe host and customers: each dj-stripe table's rows, as COPY text.
_MIRRORED: dict[tuple[str, frozenset[str]], dict[str, bytes]] = {}


def stripe_mirror_as_deployed(stripe_host: str, events: list[dict]) -> None:
    """What a running deployment's dj-stripe tables hold before these events arrive, which
    ``database_reset`` emptied: the catalogue's prices and products (``catalogue_sync`` at
    deploy), each customer (mirrored when our checkout created it) and the Stripe account.

    The first call for a Stripe host and set of customers reads them from Stripe: about 50
    calls, 7 s with the offline Stripe's 150 ms a call. A later call copies the rows it stored
    back (COPY, under a second): the events never change Stripe's side, they only make us
    read it, so the rows are the same, and the queue section resets five times."""
    import stripe
    from django.conf import settings
    from djstripe import models as djstripe_models

    from billing.catalogue_sync import catalogue_sync

    settings.STRIPE_API_HOST = stripe.api_base = stripe_host  # the SDK's calls, ours included
    wanted = frozenset(e["data"]["object"].get("customer") for e in events) - {None}
    mirrored = _MIRRORED.get((stripe_host, wanted))
    if mirrored is not None:
        _tables_load(mirrored)
        return
    catalogue_sync()
    djstripe_models.Account.get_or_retrieve_for_api_key(STRIPE_KEY)
    customers = stripe.Customer.list(
        limit=100, api_key=STRIPE_KEY, expand=["data.invoice_settings.default_payment_method"]
    )
    for customer in customers.auto_paging_iter():
        if customer.id in wanted:
            djstripe_models.Customer.sync_from_stripe_data(customer, api_key=STRIPE_KEY)
    _MIRRORED[(stripe_host, wanted)] = _tables_dump()


def _djstripe_tables() -> list[str]:
    from django.db import connection

    return [t for t in connection.introspection.table_names() if t.startswith("djstripe_")]


def _tables_dump() -> dict[str, bytes]:
    from django.db import connection

    dumped = {}
    with connection.cursor() as cursor:
        for table in _djstripe_tables():
            with cursor.copy(f"COPY {connection.ops.quote_name(table)} TO STDOUT") as copy:
                dumped[table] = b"".join(bytes(block) for block in copy)
    return dumped


def _tables_load(dumped: dict[str, bytes]) -> None:
    """Rows from ``_tables_dump`` into the emptied tables, in one transaction: Django's
    foreign keys are deferred to its commit, so the tables' order does not matter."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        for table, rows in dumped.items():
            if rows:
                with cursor.copy(f"COPY {connection.ops.quote_name(table)} FROM STDIN") as copy:
                    copy.write(rows)


def run(quick: bool = False) -> list[Row]:
    database_prepare()
    # 200 customers (1,000 events) in the full run: the first deliveries' rate is steady long
    # before that (2,000 took 57 s of the run's 10 minutes at 35 events/s, 1,000 half of it);
    # 2,000 customers (issue 7's size) took ~14 minutes on a busy 2-core machine.
    # BENCH_WEBHOOK_CUSTOMERS sets it.
    customers = int(os.environ.get("BENCH_WEBHOOK_CUSTOMERS", 50 if quick else 200))
    wanted = int(os.environ.get("BENCH_WEBHOOK_EVENTS", customers * 5))
    state, events = world_build(customers, wanted)
    users = database_reset(events)
    bodies = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event["type"]] = kinds.get(event["type"], 0) + 1
    log(f"webhooks: {len(events)} events over {len(users)} customers: {kinds}")

    port = free_port()
    emulator = subprocess.Popen(
        [PYTHON, __file__, "--serve-emulator", str(state), str(port)], cwd=BASE_DIR
    )
    try:
        wait_port(port, timeout=120)  # loading 2,000 customers' state takes a few seconds
        stripe_mirror_as_deployed(f"http://127.0.0.1:{port}", events)
        # More workers than cores: a first delivery mostly waits (on PostgreSQL and on the
        # emulator's answer to the event's re-read).
        workers = int(os.environ.get("BENCH_WEBHOOK_WORKERS", "8"))
        with gunicorn(workers, STRIPE_API_HOST=f"http://127.0.0.1:{port}") as server:
            for _ in range(16):  # warm every worker
                urllib.request.urlopen(server.url + "/healthz").read()
            before = effects(users)
            first = post_all(server.url + "/api/billing/webhook", bodies)
            log(f"webhooks first: {first}")
            after_first = effects(users)
            second = post_all(server.url + "/api/billing/webhook", bodies)
            log(f"webhooks duplicates: {second}")
            after_second = effects(users)
            # Under /api/: a JSON 404 (no template, no static files to find).
            ceiling = post_all(server.url + "/api/nowhere", bodies)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    from djstripe.models import Event

    stored = Event.objects.count()
    speedup = second["rate"] / first["rate"]
    changed = {k: after_second[k] - after_first[k] for k in after_first}
    log(f"webhooks effects before {before} after first {after_first} after second "
        f"{after_second}; {stored} events stored; client ceiling {ceiling}")  # fmt: skip
    scale = "" if not quick else " (quick: scaled down)"
    return [
        Row(
            "3 webhooks",
            f"{len(events):,} first deliveries, {len(users):,} customers{scale}",
            fmt(first["rate"], "events/s"),
            f"p50 {first['p50']:.0f} ms, p99 {first['p99']:.0f} ms",
            f"{first['failures']} failed",
            "all 200",
            verdict(first["failures"] == 0 and stored == len(events)),
        ),
        Row(
            "3 webhooks",
            f"the same {len(events):,} again (duplicates)",
            fmt(second["rate"], "events/s"),
            fmt(first["rate"], "events/s (first)"),
            f"{speedup:.1f}x",
            ">= 5x",
            verdict(speedup >= 5),
        ),
        Row(
            "3 webhooks",
            "duplicates: p50 / p99; new effects",
            f"{second['p50']:.0f} / {second['p99']:.0f} ms; "
            f"{sum(abs(v) for v in changed.values())}",
            f"ledger +{after_first['ledger'] - before['ledger']}, "
            f"activities +{after_first['activities'] - before['activities']} (first)",
            "",
            "0 new effects",
            verdict(not any(changed.values()) and second["failures"] == 0),
        ),
        Row(
            "3 webhooks",
            f"client ceiling ({CLIENTS} threads, 404s)",
            fmt(ceiling["rate"], "req/s"),
        ),
    ]


def serve_emulator(state: str, port: int, latency: float = 0.0) -> None:
    """The saved world over HTTP, read-mostly: no snapshot after each change and no ticker.

    ``python -m stripe_emulator --state`` rewrites the whole JSON snapshot whenever something
    changes and runs due work every second; with 2,000 customers (~100,000 objects) that kept
    the emulator's one core busy and made it, not the app, the bottleneck (2.6 events/s).
    """
    from stripe_emulator import Emulator

    emulator = Emulator(state_path=state, delivery="sync")
    emulator.state_path = None
    emulator.serve("127.0.0.1", port, latency=latency)
    threading.Event().wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-emulator"]:
        serve_emulator(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]) if sys.argv[4:] else 0.0)
    django_setup()
    print_table(run(quick="--quick" in sys.argv))
    os._exit(0)
