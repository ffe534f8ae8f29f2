"""Concurrent deliveries and checkouts over real PostgreSQL connections."""

from __future__ import annotations

import pytest
from django.db import connection
from djstripe.models import Event

from billing import services
from billing.tests.harness import subscribe_pro
from hrvstr.tests.concurrency import (
    run_in_processes,
    run_together,
)
from subscriptions.models import CreditAccount
from subscriptions.selectors import ledger_drift

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]


def test_two_checkouts_at_once_create_one_stripe_customer(owner, stripe_harness):
    customer_ids = run_together(6, lambda index: services.customer_ensure(user=owner))
    assert len(set(customer_ids)) == 1
    assert len(stripe_harness.emulator.store.all("customer")) == 1
    assert CreditAccount.objects.get(user=owner).stripe_customer_id == customer_ids[0]


def test_the_same_event_delivered_20_times_at_once_has_one_effect(api, owner, stripe_harness):
    subscribe_pro(api, stripe_harness)
    response = api.post(
        "/api/billing/create-checkout-session", {"bundle": "credits_250"}, format="json"
    )
    stripe_harness.deliver()
    stripe_harness.emulator.complete_checkout(response.json()["sessionId"])
    completed = [
        d for d in stripe_harness.queued if d.event["type"] == "checkout.session.completed"
    ]
    stripe_harness.queued.clear()

    statuses = run_together(20, lambda index: stripe_harness.post(completed[0]))
    # A delivery that waited past the lock timeout for the first one's commit answers 503,
    # which Stripe retries; none may answer 4xx, and the retry of each changes nothing.
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    for status in statuses:
        if status != 200:
            assert stripe_harness.post(completed[0]) == 200
    account = CreditAccount.objects.get(user=owner)
    assert account.purchased_balance == 250
    assert ledger_drift(account=account) == {}
    assert Event.objects.filter(id=completed[0].event["id"]).count() == 1


def test_a_whole_checkout_delivered_concurrently_converges(api, owner, stripe_harness):
    response = api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    stripe_harness.deliver()
    stripe_harness.emulator.complete_checkout(response.json()["sessionId"])
    batch = list(stripe_harness.queued) * 2
    stripe_harness.queued.clear()
    statuses = run_together(len(batch), lambda index: stripe_harness.post(batch[index]))
    assert set(statuses) <= {200, 500, 503}
    # Whatever lost a race is retried by Stripe: deliver every failed one again, in order.
    for delivery, status in zip(batch, statuses, strict=True):
        if status != 200:
            assert stripe_harness.post(delivery) == 200
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.remaining) == ("pro", 500)
    assert ledger_drift(account=account) == {}


def test_the_same_event_delivered_20_times_to_separate_processes_has_one_effect(
    api, owner, stripe_harness
):
    subscribe_pro(api, stripe_harness)
    response = api.post(
        "/api/billing/create-checkout-session", {"bundle": "credits_250"}, format="json"
    )
    stripe_harness.deliver()
    stripe_harness.emulator.complete_checkout(response.json()["sessionId"])
    completed = next(
        d for d in stripe_harness.queued if d.event["type"] == "checkout.session.completed"
    )
    stripe_harness.queued.clear()

    statuses = run_in_processes(20, lambda index: stripe_harness.post(completed))
    # A loser of the insert race may answer 5xx (Stripe retries it); none may answer 4xx.
    assert all(status == 200 or status in {500, 503} for status in statuses), statuses
    assert statuses.count(200) >= 1
    for status in statuses:
        if status != 200:
            assert stripe_harness.post(completed) == 200
    account = CreditAccount.objects.get(user=owner)
    assert account.purchased_balance == 250
    assert ledger_drift(account=account) == {}
    assert Event.objects.filter(id=completed.event["id"]).count() == 1
    from activities.models import LedgerEntry

    assert LedgerEntry.objects.filter(user=owner, kind="purchase").count() == 1
