"""Unit tests of the Stripe-to-account translation, with Stripe-shaped dicts."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from activities.models import LedgerEntry
from billing import stripe_data, sync
from subscriptions.models import CreditAccount

NOW = int(time.time())


@pytest.fixture(autouse=True)
def charges(monkeypatch):
    """Stripe's charges per payment intent, as the checkout handler looks them up."""
    found: dict[str, list[dict]] = {}
    monkeypatch.setattr(sync.gateway, "charges_for_payment_intent", lambda pi: found.get(pi, []))
    return found


def subscription(lookup_key="pro_monthly", status="active", interval="month", **extra):
    return {
        "id": "sub_1",
        "object": "subscription",
        "customer": "cus_1",
        "status": status,
        "cancel_at_period_end": False,
        "metadata": {},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_1",
                    "current_period_start": NOW,
                    "current_period_end": NOW + 30 * 86400,
                    "price": {
                        "id": "price_x",
                        "lookup_key": lookup_key,
                        "recurring": {"interval": interval},
                    },
                }
            ],
        },
        **extra,
    }


def link(user):
    CreditAccount.objects.filter(user=user).update(stripe_customer_id="cus_1")


def test_periods_are_read_from_the_subscription_item():
    start, end = stripe_data.subscription_period(subscription())
    assert start == datetime.fromtimestamp(NOW, tz=UTC)
    assert (end - start).days == 30


def test_invoice_subscription_is_read_from_parent():
    invoice = {"parent": {"subscription_details": {"subscription": "sub_9"}}}
    assert stripe_data.invoice_subscription_id(invoice) == "sub_9"
    assert stripe_data.invoice_subscription_id({"subscription": "sub_legacy"}) is None


def test_invoice_period_skips_proration_lines():
    invoice = {
        "lines": {
            "data": [
                {
                    "parent": {"subscription_item_details": {"proration": True}},
                    "period": {"start": 1, "end": 2},
                },
                {
                    "parent": {"subscription_item_details": {"proration": False}},
                    "period": {"start": NOW, "end": NOW + 10},
                },
            ]
        }
    }
    assert stripe_data.invoice_subscription_period(invoice)[0].timestamp() == NOW


def test_an_unknown_price_keeps_the_paying_tier_and_flags_it(owner):
    link(owner)
    sync.subscription_apply(subscription(), observed_at=datetime.now(tz=UTC), idempotency_key="a")
    sync.subscription_apply(
        subscription(lookup_key="mystery_price"),
        observed_at=datetime.now(tz=UTC),
        idempotency_key="b",
    )
    account = CreditAccount.objects.get(user=owner)
    assert account.tier == "pro"
    assert "mystery_price" in account.billing_problem


def test_a_subscription_of_an_unknown_customer_changes_nothing(owner):
    assert (
        sync.subscription_apply(
            subscription(), observed_at=datetime.now(tz=UTC), idempotency_key="a"
        )
        is None
    )
    assert CreditAccount.objects.get(user=owner).tier == "free"


def test_a_proration_invoice_is_not_a_renewal(owner):
    link(owner)
    invoice = {"id": "in_1", "billing_reason": "subscription_update", "customer": "cus_1"}
    sync.invoice_paid_apply(invoice, event_id="evt_1", observed_at=datetime.now(tz=UTC))
    resets = LedgerEntry.objects.filter(kind="period_reset")
    assert not resets.exclude(idempotency_key__startswith="open:").exists()  # only the opening


def test_a_failed_delayed_bundle_payment_is_told_once_and_grants_nothing(owner):
    from activities.models import Activity

    link(owner)
    session = {"id": "cs_1", "customer": "cus_1", "mode": "payment", "payment_status": "unpaid"}
    for _ in range(2):
        sync.checkout_payment_failed_apply(session, event_id="evt_1")
        assert sync.checkout_completed_apply(session, event_id="evt_1") is None
    assert Activity.objects.filter(user=owner, activity_type="payment_failed").count() == 1
    assert CreditAccount.objects.get(user=owner).purchased_balance == 0


def paid_bundle_session(session_id="cs_1", quantity=1, lookup_key="credits_250"):
    return {
        "id": session_id,
        "customer": "cus_1",
        "mode": "payment",
        "payment_status": "paid",
        "payment_intent": f"pi_{session_id}",
        "amount_total": 1000 * quantity,
        "line_items": {"data": [{"quantity": quantity, "price": {"lookup_key": lookup_key}}]},
    }


def test_bundle_credits_come_from_the_catalogue_not_the_amount_paid(owner):
    link(owner)
    session = paid_bundle_session(quantity=2) | {"amount_total": 1}
    entry = sync.checkout_completed_apply(session, event_id="evt_1")
    assert entry.purchased_delta == 500
    assert entry.details["payment_intent"] == "pi_cs_1"


def test_a_session_selling_something_else_grants_nothing(owner):
    link(owner)
    assert (
        sync.checkout_completed_apply(
            paid_bundle_session(lookup_key="pro_monthly"), event_id="evt_1"
        )
        is None
    )
    assert (
        sync.checkout_completed_apply(
            paid_bundle_session() | {"customer": "cus_unknown", "metadata": {}}, event_id="e"
        )
        is None
    )


def test_partial_refunds_claw_back_only_the_new_share(owner):
    link(owner)
    sync.checkout_completed_apply(paid_bundle_session(), event_id="evt_1")
    charge = {"id": "ch_1", "payment_intent": "pi_cs_1", "amount": 1000, "amount_refunded": 400}
    sync.charge_refunded_apply(charge, event_id="evt_2")
    sync.charge_refunded_apply(charge, event_id="evt_2b")  # the same state again: nothing new
    assert CreditAccount.objects.get(user=owner).purchased_balance == 150
    sync.charge_refunded_apply(charge | {"amount_refunded": 1000}, event_id="evt_3")
    assert CreditAccount.objects.get(user=owner).purchased_balance == 0


def test_a_refund_of_something_that_is_not_a_bundle_changes_nothing(owner):
    charge = {"id": "ch_9", "payment_intent": "pi_subscription", "amount": 1900}
    assert sync.charge_refunded_apply(charge | {"amount_refunded": 1900}, event_id="e") is None


def test_a_dispute_claws_back_the_disputed_share(owner):
    link(owner)
    sync.checkout_completed_apply(paid_bundle_session(), event_id="evt_1")
    dispute = {"id": "dp_1", "charge": "ch_1", "payment_intent": "pi_cs_1", "amount": 1000}
    entry = sync.dispute_apply(dispute, event_id="evt_4")
    assert entry.details["taken"] == 250
    assert sync.dispute_apply(dispute, event_id="evt_4") is None
    assert sync.dispute_apply(dispute | {"payment_intent": "pi_other"}, event_id="e") is None


def test_a_refund_already_on_the_charge_is_clawed_back_when_the_checkout_arrives(owner, charges):
    link(owner)
    charge = {"id": "ch_1", "payment_intent": "pi_cs_1", "amount": 1000, "amount_refunded": 1000}
    assert sync.charge_refunded_apply(charge, event_id="evt_refund") is None  # no purchase yet
    charges["pi_cs_1"] = [charge]
    sync.checkout_completed_apply(paid_bundle_session(), event_id="evt_1")
    sync.charge_refunded_apply(charge, event_id="evt_refund_retry")  # a retry: nothing more
    assert CreditAccount.objects.get(user=owner).purchased_balance == 0
    assert LedgerEntry.objects.filter(user=owner, kind="clawback").count() == 1
