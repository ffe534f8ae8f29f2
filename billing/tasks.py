"""Background work: Stripe webhook processing and the scheduled jobs, on Procrastinate.

Why Procrastinate (a task queue in PostgreSQL) rather than Celery with Redis: a job is a row in
the same database, so the webhook endpoint stores the delivery and enqueues its processing in
ONE transaction. Either both are committed or neither is: no event is lost between "stored" and
"enqueued" (Celery would need an outbox table and a relay for that), and a redelivery while the
first job still waits is refused by the job's queueing lock (the event id). Its scheduler
records each period it deferred in a table with a unique key, so a periodic job runs once per
period whatever the number of workers running the scheduler.

Two modes (``settings.TASK_MODE``):

- ``queue`` (PostgreSQL, production): ``webhook_store_and_enqueue`` stores the delivery and
  defers its job in one statement; ``python manage.py procrastinate worker`` runs the jobs
  (see README, "Workers").
- ``inline`` (SQLite for ``make run``, and the test suite): nothing is enqueued; the endpoint
  runs ``webhook_process`` itself once its transaction committed, and the scheduled jobs run
  from ``grant_monthly_allowances`` (cron) as before. Same functions, no broker.

Processing is at least once; its effects are exactly once, as before the queue: dj-stripe
stores the Event row first, in the same transaction as our receivers' writes, and skips an
event id it already stored; our ledger rows carry unique idempotency keys.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from traceback import format_exc
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from djstripe import signals as djstripe_signals
from djstripe.apps import __version__ as djstripe_version
from djstripe.models import Event, WebhookEndpoint, WebhookEventTrigger
from djstripe.settings import djstripe_settings
from procrastinate import JobContext, RetryStrategy
from procrastinate.contrib.django import app
from procrastinate.manager import QUEUEING_LOCK_CONSTRAINT

from billing.customer_order import customer_serialize, event_customer
from billing.owner_account import owner_account_memo
from hrvstr.db import prepared_cursor

logger = logging.getLogger(__name__)

# The priority lane: events that change what a customer waiting on a page sees. Higher first;
# within a priority, in arrival order. A month-end burst is mostly renewals' invoice.paid, which
# nobody waits for: they go in the ordinary lane, so a Checkout completed during the burst is
# next in line instead of behind thousands of renewals.
PRIORITY_QUEUE = "webhooks-priority"
QUEUE = "webhooks"
SCHEDULED_QUEUE = "scheduled"
CHECKOUT_COMPLETED_EVENTS = frozenset(
    {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
)
AT_THE_SUCCESS_PAGE = 20  # the customer has just paid and is looking at the success page
ACTING_NOW = 10  # an invoice the customer is paying now: first, upgrade, "Pay now"
RENEWAL_BILLING_REASONS = frozenset({"subscription_cycle", "subscription_threshold"})
# A failing event is retried 1, 3, 9, ... 2,187 s apart (about an hour in all); it then stays
# failed, visible in the admin's webhook deliveries list (with its traceback) for a replay.
# Stripe keeps redelivering for three days as well: each redelivery is enqueued again.
WEBHOOK_RETRY = RetryStrategy(max_attempts=8, exponential_wait=3)


def queue_enabled() -> bool:
    return settings.TASK_MODE == "queue"


def queue_for(event: Mapping[str, Any]) -> tuple[str, int]:
    """The queue and priority (higher first) of a verified event."""
    event_type = event.get("type")
    if event_type in CHECKOUT_COMPLETED_EVENTS:
        return PRIORITY_QUEUE, AT_THE_SUCCESS_PAGE
    if event_type == "invoice.paid":
        invoice = (event.get("data") or {}).get("object") or {}
        if invoice.get("billing_reason") not in RENEWAL_BILLING_REASONS:
            return PRIORITY_QUEUE, ACTING_NOW
    return QUEUE, 0


PROCESS_WEBHOOK_TASK = "billing.process_webhook"

# The delivery's row and its job in ONE statement (autocommit: a transaction of its own), unless
# dj-stripe already stored the event (then it had all its effects). The job is deferred by
# Procrastinate's own SQL function, as ``Task.defer`` calls it (its LISTEN/NOTIFY trigger wakes
# the workers); a job already waiting for the event breaks the queueing lock's unique index
# and the whole statement, row included, is undone. One round trip instead of eight (a SELECT
# of the event, BEGIN, INSERT, SAVEPOINT, the defer, RELEASE, COMMIT): see bench/task_queue.py.
_STORE_AND_ENQUEUE = f"""
WITH stored AS (
    INSERT INTO {WebhookEventTrigger._meta.db_table}
        (remote_ip, headers, body, valid, processed, exception, traceback, djstripe_version,
         created, updated, stripe_trigger_account_id, webhook_endpoint_id)
    SELECT %(remote_ip)s, %(headers)s::jsonb, %(body)s, TRUE, FALSE, '', '', %(version)s,
           now(), now(), %(account_id)s, %(endpoint_id)s
    WHERE NOT EXISTS (SELECT 1 FROM {Event._meta.db_table} WHERE id = %(event_id)s)
    RETURNING id
)
SELECT stored.id, procrastinate_defer_jobs_v1(ARRAY[ROW(
    %(queue)s, '{PROCESS_WEBHOOK_TASK}', %(priority)s, NULL, %(queueing_lock)s,
    jsonb_build_object('trigger_id', stored.id), NULL
)::procrastinate_job_to_defer_v1]) FROM stored
"""


def webhook_store_and_enqueue(
    *,
    endpoint: WebhookEndpoint,
    event: Mapping[str, Any],
    body: str,
    headers_json: str,
    remote_ip: str,
) -> int | None:
    """Store a verified delivery (a valid ``WebhookEventTrigger``) and defer its processing,
    all or nothing, in one round trip (queue mode, PostgreSQL).

    Returns the trigger's id; None when nothing was stored because the event was already
    processed or a job for it is already waiting (a redelivery: that job does the work).
    """
    event_id = str(event.get("id"))
    queue, priority = queue_for(event)
    parameters = {
        "remote_ip": remote_ip,
        "headers": headers_json,
        "body": body,
        "version": djstripe_version,
        "account_id": endpoint.djstripe_owner_account_id,
        "endpoint_id": endpoint.id,
        "event_id": event_id,
        "queue": queue,
        "priority": priority,
        "queueing_lock": f"event:{event_id}",
    }
    try:
        with prepared_cursor(connection) as cursor:
            cursor.execute(_STORE_AND_ENQUEUE, parameters)
            row = cursor.fetchone()
    except IntegrityError as exc:
        diagnostic = getattr(exc.__cause__, "diag", None)
        if getattr(diagnostic, "constraint_name", None) == QUEUEING_LOCK_CONSTRAINT:
            return None
        raise
    return row[0] if row else None


def _api_key(trigger: WebhookEventTrigger) -> str | None:
    account = trigger.stripe_trigger_account
    livemode = bool(trigger.webhook_endpoint.livemode) if trigger.webhook_endpoint else False
    return (account.default_api_key if account else None) or (
        djstripe_settings.get_default_api_key(livemode)
    )


# What ``WebhookEventTrigger.process`` sets, and the row's auto_now time.
_PROCESSED_FIELDS = ("event", "processed", "exception", "traceback", "updated")


def webhook_process(*, trigger_id: int) -> bool:
    """Process one stored delivery (dj-stripe's sync, then our receivers), all or nothing.

    Returns False when it had already been processed. On failure the exception and traceback
    are saved on the trigger (the admin lists it as failed) and the exception propagates: the
    queue retries the job, the inline endpoint answers 500 so Stripe retries.
    """
    trigger = (
        WebhookEventTrigger.objects.select_related("webhook_endpoint", "stripe_trigger_account")
        .filter(pk=trigger_id)
        .first()
    )
    if trigger is None:
        logger.warning("webhook trigger %s is gone; nothing to process", trigger_id)
        return False
    if trigger.processed:
        return False
    api_key = _api_key(trigger)
    try:
        with transaction.atomic(), owner_account_memo():
            # Before dj-stripe re-reads the object: this customer's events apply in read order.
            customer_serialize(event_customer(trigger.body))
            djstripe_signals.webhook_pre_process.send(sender=WebhookEventTrigger, instance=trigger)
            trigger.process(save=False, api_key=api_key)
            djstripe_signals.webhook_post_process.send(
                sender=WebhookEventTrigger, instance=trigger, api_key=api_key
            )
            # "processed" commits with the effects, or not at all. Only what processing set:
            # rewriting the stored body and headers (kilobytes, TOASTed on PostgreSQL) with
            # the same values was most of this UPDATE.
            trigger.save(update_fields=_PROCESSED_FIELDS)
    except Exception as exc:
        max_length = WebhookEventTrigger._meta.get_field("exception").max_length
        WebhookEventTrigger.objects.filter(pk=trigger.pk).update(
            exception=str(exc)[:max_length], traceback=format_exc()
        )
        djstripe_signals.webhook_processing_error.send(
            sender=WebhookEventTrigger,
            instance=trigger,
            api_key=api_key,
            exception=exc,
            data=getattr(exc, "http_body", ""),
        )
        raise
    return True


@app.task(name=PROCESS_WEBHOOK_TASK, queue=QUEUE, retry=WEBHOOK_RETRY, pass_context=False)
def process_webhook(trigger_id: int) -> None:
    webhook_process(trigger_id=trigger_id)


# --- scheduled jobs -----------------------------------------------------------------------------
# Each worker runs Procrastinate's scheduler; the procrastinate_periodic_defers table's unique
# (task, periodic id, timestamp) makes one job per minute whatever the number of schedulers.


@app.periodic(cron="* * * * *", periodic_id="every-minute")
@app.task(
    name="billing.grant_monthly_allowances",
    queue=SCHEDULED_QUEUE,
    queueing_lock="grant_monthly_allowances",
    pass_context=False,
)
def grant_monthly_allowances(timestamp: int) -> None:
    from subscriptions.services import upkeep_run

    done = upkeep_run()  # billing's auto top-ups included (billing.apps registers them)
    logger.info("scheduled at %s: %s", timestamp, done)


# A worker killed mid-job (SIGKILL, a lost machine) leaves its job "doing" forever: once the
# worker's heartbeat is older than this, the job is put back in its queue.
STALLED_AFTER_SECONDS = 60


@app.periodic(cron="* * * * *", periodic_id="every-minute")
@app.task(
    name="billing.retry_stalled_jobs",
    queue=SCHEDULED_QUEUE,
    queueing_lock="retry_stalled_jobs",
    pass_context=True,
)
async def retry_stalled_jobs(context: JobContext, timestamp: int) -> None:
    job_manager = context.app.job_manager
    stalled = await job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS)
    for job in stalled:
        logger.warning("job %s (%s) stalled: retrying it", job.id, job.task_name)
        await job_manager.retry_job(job)
