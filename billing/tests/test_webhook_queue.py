"""Webhooks on the task queue (Procrastinate on PostgreSQL): store and enqueue in one
transaction, answer at once, process at least once with effects exactly once."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from djstripe.models import Event, WebhookEventTrigger

from billing import gateway, tasks
from billing.tests.harness import checkout
from billing.webhook_events import wanted
from hrvstr.testing import prepared_statement_uses
from subscriptions.models import CreditAccount
from subscriptions.selectors import ledger_drift

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the queue lives in PostgreSQL"),
]


def jobs(**filters) -> list[dict]:
    where = " AND ".join(f"{name} = %s" for name in filters) or "TRUE"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, queue_name, task_name, status, priority, args, attempts"
            f" FROM procrastinate_jobs WHERE {where} ORDER BY id",
            list(filters.values()),
        )
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # Django hands jsonb back as text
        if isinstance(row["args"], str):
            row["args"] = json.loads(row["args"])
    return rows


def run_worker(queues=(tasks.PRIORITY_QUEUE, tasks.QUEUE)) -> None:
    """One worker until its queues are empty, on its own connection, as
    `manage.py procrastinate worker` runs it."""
    from procrastinate.contrib.django import app
    from procrastinate.contrib.django.django_connector import DjangoConnector

    connector = app.connector
    assert isinstance(connector, DjangoConnector)
    with app.replace_connector(connector.get_worker_connector()):
        app.run_worker(
            queues=list(queues), wait=False, install_signal_handlers=False, listen_notify=False
        )


@pytest.fixture
def queued(settings):
    """The queue on; its tables empty (they are not Django-managed, so not flushed)."""
    settings.TASK_MODE = "queue"
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE procrastinate_jobs, procrastinate_periodic_defers RESTART IDENTITY CASCADE"
        )


def paid_checkout(api, harness) -> list:
    """A Pro Checkout paid on the offline Stripe; its deliveries, not yet posted."""
    checkout(api, harness, {"tier": "pro", "interval": "month"})
    batch, harness.queued = list(harness.queued), []
    return batch


def test_deliveries_are_stored_and_enqueued_then_a_worker_applies_them(
    queued, api, owner, stripe_harness
):
    batch = paid_checkout(api, stripe_harness)
    assert {d.event["type"] for d in batch} >= {"invoice.paid", "customer.subscription.created"}
    for delivery in batch:
        response = stripe_harness.client.post(
            "/api/billing/webhook",
            data=delivery.body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=delivery.headers["Stripe-Signature"],
        )
        assert response.status_code == 200
        # The harness's endpoint is subscribed as production's is: every delivery is wanted.
        assert wanted(delivery.event["type"])
        assert response.json()["queued"] is True
    # Nothing processed yet: every delivery has its row and its job, in its lane.
    assert WebhookEventTrigger.objects.filter(processed=True).count() == 0
    assert CreditAccount.objects.get(user=owner).tier == "free"
    waiting = jobs(status="todo")
    assert len(waiting) == WebhookEventTrigger.objects.count()
    assert len(waiting) == len(batch)
    by_trigger = {job["args"]["trigger_id"]: job for job in waiting}
    lanes = {
        "checkout.session.completed": (tasks.PRIORITY_QUEUE, 20),  # at the success page
        "invoice.paid": (tasks.PRIORITY_QUEUE, 10),  # the first invoice: paying now
    }
    for trigger in WebhookEventTrigger.objects.all():
        job = by_trigger[trigger.pk]
        expected = lanes.get(trigger.json_body["type"], (tasks.QUEUE, 0))
        assert (job["queue_name"], job["priority"]) == expected, trigger.json_body["type"]

    run_worker()

    assert jobs(status="todo", task_name="billing.process_webhook") == []
    assert WebhookEventTrigger.objects.filter(processed=False).count() == 0
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.monthly_allowance) == ("pro", 500)
    assert ledger_drift(account=account) == {}


def test_a_redelivery_while_the_job_waits_adds_no_row_and_no_job(
    queued, api, owner, stripe_harness
):
    delivery = next(
        d for d in paid_checkout(api, stripe_harness) if d.event["type"] == "invoice.paid"
    )
    before = (WebhookEventTrigger.objects.count(), len(jobs(task_name="billing.process_webhook")))
    assert stripe_harness.post(delivery) == 200
    response = stripe_harness.client.post(
        "/api/billing/webhook",
        data=delivery.body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=delivery.headers["Stripe-Signature"],
    )
    assert response.status_code == 200 and response.json()["duplicate"] is True
    after = (WebhookEventTrigger.objects.count(), len(jobs(task_name="billing.process_webhook")))
    assert after == (before[0] + 1, before[1] + 1)


def test_the_store_and_enqueue_statement_is_planned_once_per_connection(
    queued, api, owner, stripe_harness
):
    batch = paid_checkout(api, stripe_harness)
    for delivery in batch + batch:  # new ones, then redeliveries (their jobs are waiting)
        assert stripe_harness.post(delivery) == 200
    [uses] = prepared_statement_uses("procrastinate_defer_jobs_v1")
    assert uses == 2 * len(batch) - connection.connection.prepare_threshold  # all but those
    assert len(jobs(task_name="billing.process_webhook")) == len(batch)


def test_no_stored_delivery_without_its_job(queued, api, owner, stripe_harness):
    delivery = paid_checkout(api, stripe_harness)[0]
    stored = WebhookEventTrigger.objects.count()
    # The queue refuses every new job (as a full disk or a broken table would).
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE procrastinate_jobs ADD CONSTRAINT refuse_jobs CHECK (false) NOT VALID"
        )
    try:
        assert stripe_harness.post(delivery) == 503
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE procrastinate_jobs DROP CONSTRAINT refuse_jobs")
    # The row was stored in the same statement as the refused job: neither is kept, and
    # Stripe retries.
    assert WebhookEventTrigger.objects.count() == stored
    assert not WebhookEventTrigger.objects.filter(body__contains=delivery.event["id"]).exists()
    assert stripe_harness.post(delivery) == 200
    assert WebhookEventTrigger.objects.filter(body__contains=delivery.event["id"]).count() == 1
    assert len(jobs(task_name="billing.process_webhook")) == 1


def test_a_failing_event_is_kept_visible_and_retried_until_it_applies(
    queued, api, owner, stripe_harness, monkeypatch
):
    from billing import sync

    delivery = next(
        d for d in paid_checkout(api, stripe_harness) if d.event["type"] == "invoice.paid"
    )
    real = sync.invoice_paid_apply

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in our rules")

    monkeypatch.setattr(sync, "invoice_paid_apply", broken)
    assert stripe_harness.post(delivery) == 200
    run_worker()
    trigger = WebhookEventTrigger.objects.get(body__contains=delivery.event["id"])
    assert not trigger.processed and "a bug in our rules" in trigger.exception
    assert not Event.objects.filter(id=delivery.event["id"]).exists()
    [job] = [
        j
        for j in jobs(task_name="billing.process_webhook")
        if j["args"]["trigger_id"] == trigger.pk
    ]
    assert (job["status"], job["attempts"]) == ("todo", 1)  # scheduled again, not dropped

    monkeypatch.setattr(sync, "invoice_paid_apply", real)
    with connection.cursor() as cursor:  # its retry is due now
        cursor.execute(
            "UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = %s", [job["id"]]
        )
    run_worker()
    trigger.refresh_from_db()
    assert trigger.processed and trigger.exception == ""
    assert jobs(id=job["id"])[0]["status"] == "succeeded"
    assert CreditAccount.objects.get(user=owner).monthly_allowance == 500


def test_one_scheduled_run_per_period_whatever_the_number_of_schedulers(queued):
    import asyncio

    from procrastinate import periodic
    from procrastinate.contrib.django import app

    task = app.periodic_registry.periodic_tasks[
        ("billing.grant_monthly_allowances", "every-minute")
    ]
    minute = 1_800_000_000

    def schedulers_reach(timestamp: int, count: int) -> None:
        for _ in range(count):  # each worker runs its own scheduler
            deferrer = periodic.PeriodicDeferrer(registry=app.periodic_registry)
            asyncio.run(deferrer.defer_jobs([(task, timestamp)]))

    def runs(timestamp: int) -> list[dict]:
        # (the worker's own scheduler also defers the current minute: not counted here)
        return [
            job
            for job in jobs(task_name="billing.grant_monthly_allowances")
            if job["args"].get("timestamp") == timestamp
        ]

    schedulers_reach(minute, 3)
    assert len(runs(minute)) == 1
    run_worker(queues=[tasks.SCHEDULED_QUEUE])
    assert runs(minute)[0]["status"] == "succeeded"
    # The same minute again, after its job ran (no queueing lock left to refuse it): still one.
    schedulers_reach(minute, 2)
    assert len(runs(minute)) == 1
    schedulers_reach(minute + 60, 2)
    assert len(runs(minute + 60)) == 1


def test_two_workers_apply_one_customers_events_in_the_order_they_read_them(
    queued, api, owner, stripe_harness, monkeypatch
):
    """The soak's drift: worker A re-reads the subscription (cancelling), the customer resumes
    in the same second, worker B reads and applies "resumed", then A applies its older read.
    Both states carry the same second on Stripe's clock, so only the order of reading can tell
    which is newer: one customer's events are applied one at a time, each read inside."""
    import threading

    import stripe
    import time_machine
    from django.db import connections
    from django.utils import timezone

    from billing.tests.harness import SECRET_KEY

    paid = paid_checkout(api, stripe_harness)
    for delivery in paid:
        stripe_harness.post(delivery)
    run_worker()
    account = CreditAccount.objects.get(user=owner)
    assert account.tier == "pro" and not account.cancel_at_period_end
    subscription_id = account.stripe_subscription_id

    def trigger_of(event_type: str) -> int:
        delivery = next(d for d in stripe_harness.queued if d.event["type"] == event_type)
        stripe_harness.queued.clear()
        assert stripe_harness.post(delivery) == 200
        return WebhookEventTrigger.objects.get(body__contains=delivery.event["id"]).pk

    a_has_read, b_is_done = threading.Event(), threading.Event()
    real_read = gateway.object_read  # how a worker reads the event's object

    def read(*args, **kwargs):
        subscription = real_read(*args, **kwargs)
        if threading.current_thread().name == "A" and not a_has_read.is_set():
            a_has_read.set()
            b_is_done.wait(timeout=3)  # with the lock B waits for A: A goes on after 3 s
        return subscription

    monkeypatch.setattr(gateway, "object_read", read)

    def process(trigger_id: int) -> None:
        try:
            tasks.webhook_process(trigger_id=trigger_id)
        finally:
            if threading.current_thread().name == "B":
                b_is_done.set()
            connections.close_all()

    with time_machine.travel(timezone.now(), tick=False):  # one second on Stripe's clock
        stripe.Subscription.modify(subscription_id, cancel_at_period_end=True, api_key=SECRET_KEY)
        cancelling = trigger_of("customer.subscription.updated")
        worker_a = threading.Thread(target=process, args=(cancelling,), name="A")
        worker_a.start()
        assert a_has_read.wait(timeout=10)
        stripe.Subscription.modify(subscription_id, cancel_at_period_end=False, api_key=SECRET_KEY)
        resumed = trigger_of("customer.subscription.updated")
        worker_b = threading.Thread(target=process, args=(resumed,), name="B")
        worker_b.start()
        worker_a.join(timeout=20)
        worker_b.join(timeout=20)

    assert (
        WebhookEventTrigger.objects.filter(pk__in=[cancelling, resumed], processed=True).count()
        == 2
    )
    account.refresh_from_db()
    assert (
        stripe.Subscription.retrieve(subscription_id, api_key=SECRET_KEY).cancel_at_period_end
        is False
    )
    assert account.cancel_at_period_end is False


def test_a_checkout_during_a_renewal_backlog_is_processed_before_the_renewals(
    queued, settings, api, owner, stripe_harness, monkeypatch
):
    """A month-end burst is renewals' invoice.paid, which nobody waits for: they take the
    ordinary lane, and a bundle bought meanwhile is processed first (the bench's 10,000-event
    burst had its Checkout wait behind 6,000 priority jobs before)."""
    from billing.tests.harness import subscribe_pro

    settings.TASK_MODE = "inline"
    subscribe_pro(api, stripe_harness)
    settings.TASK_MODE = "queue"
    stripe_harness.emulator.advance_clock(31 * 86400 + 7200)  # renewed and paid
    stripe_harness.deliver()  # stored and queued, not processed
    checkout(api, stripe_harness, {"bundle": "credits_250"})
    stripe_harness.deliver()

    lanes = {}
    for job in jobs(status="todo", task_name=tasks.PROCESS_WEBHOOK_TASK):
        event = WebhookEventTrigger.objects.get(pk=job["args"]["trigger_id"]).json_body
        reason = event["data"]["object"].get("billing_reason")
        lanes[(event["type"], reason)] = (job["queue_name"], job["priority"])
    assert lanes[("invoice.paid", "subscription_cycle")] == (tasks.QUEUE, 0)
    assert lanes[("checkout.session.completed", None)] == (tasks.PRIORITY_QUEUE, 20)

    processed: list[str] = []
    original = tasks.webhook_process

    def recording(*, trigger_id: int) -> bool:
        processed.append(WebhookEventTrigger.objects.get(pk=trigger_id).json_body["type"])
        return original(trigger_id=trigger_id)

    monkeypatch.setattr(tasks, "webhook_process", recording)
    run_worker()
    assert processed[0] == "checkout.session.completed", processed
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.purchased_balance) == ("pro", 250)
    assert ledger_drift(account=account) == {}
