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
def stripe_payments(monkeypatch):
    """Stripe's refunds and disputes per payment intent, as ``billing.clawbacks`` reads them:
    ``stripe_payments["refunds"]["pi_1"] = [...]``."""
    found: dict[str, dict[str, list[dict]]] = {"refunds": {}, "disputes": {}}
    monkeypatch.setattr(
        sync.gateway, "refunds_for_payment_intent", lambda pi: found["refunds"].get(pi, [])
    )
    monkeypatch.setattr(
        sync.gateway, "disputes_for_payment_intent", lambda pi: found["disputes"].get(pi, [])
    )
    # Every payment succeeded at Stripe unless a test says otherwise.
    monkeypatch.setattr(
        sync.gateway, "payment_intent_retrieve", lambda pi: {"id": pi, "status": "succeeded"}
    )
    # No proration waits for a later invoice unless a test says so.
    monkeypatch.setattr(sync.gateway, "invoice_items_pending", lambda customer: [])
    return found


def refund(amount, status="succeeded"):
    return {"id": f"re_{amount}", "amount": amount, "status": status, "payment_intent": "pi_cs_1"}


def dispute_with(*moves, status="needs_response"):
    return {
        "id": "dp_1",
        "charge": "ch_1",
        "payment_intent": "pi_cs_1",
        "amount": 1000,
        "status": status,
        "balance_transactions": [{"amount": amount} for amount in moves],
    }


def subscription(
    lookup_key="pro_monthly", status="active", interval="month", price_id="price_x", **extra
):
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
                        "id": price_id,
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
    period = stripe_data.subscription_period(subscription())
    assert period is not None
    start, end = period
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
    period = stripe_data.invoice_subscription_period(invoice)
    assert period is not None and period[0].timestamp() == NOW


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


@pytest.mark.parametrize(
    "invoice, granted",
    [
        ({"status": "open", "amount_due": 3000}, False),  # the proration charge failed
        ({"status": "void", "amount_due": 3000}, False),
        ({"status": "paid", "amount_due": 3000}, True),
        ({"status": "open", "amount_due": 0}, True),  # nothing owed
    ],
)
def test_an_upgrade_is_granted_only_once_its_invoice_is_paid(owner, monkeypatch, invoice, granted):
    link(owner)
    sync.subscription_apply(subscription(), observed_at=datetime.now(tz=UTC), idempotency_key="a")
    monkeypatch.setattr(
        sync.gateway, "invoice_retrieve", lambda invoice_id: {"id": invoice_id, **invoice}
    )
    sync.subscription_apply(
        subscription("elite_monthly", latest_invoice="in_change"),
        observed_at=datetime.now(tz=UTC),
        idempotency_key="b",
    )
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.monthly_allowance) == (
        ("elite", 2000) if granted else ("pro", 500)
    )


def test_an_upgrade_whose_proration_waits_for_the_renewal_is_not_granted_yet(owner, monkeypatch):
    link(owner)
    sync.subscription_apply(subscription(), observed_at=datetime.now(tz=UTC), idempotency_key="a")
    pending = {"amount": 2900, "parent": {"subscription_details": {"subscription": "sub_1"}}}
    monkeypatch.setattr(sync.gateway, "invoice_items_pending", lambda customer: [pending])
    sync.subscription_apply(
        subscription("elite_monthly"), observed_at=datetime.now(tz=UTC), idempotency_key="b"
    )
    assert CreditAccount.objects.get(user=owner).tier == "pro"


def invoice_billing(price_id, until, status="paid"):
    line = {"pricing": {"price_details": {"price": price_id}}, "period": {"end": until}}
    return {"id": "in_latest", "status": status, "amount_due": 2900, "lines": {"data": [line]}}


PERIOD_END = NOW + 30 * 86400


@pytest.mark.parametrize(
    "latest_invoice, granted",
    [
        (invoice_billing("price_elite", PERIOD_END), True),
        (invoice_billing("price_elite", PERIOD_END, status="open"), False),  # not paid yet
        (invoice_billing("price_pro", PERIOD_END), False),  # the old price: the proration waits
        (invoice_billing("price_elite", PERIOD_END - 86400), False),  # not to the period's end
    ],
)
def test_an_upgrade_paid_up_to_the_period_end_asks_stripe_nothing_more(
    owner, monkeypatch, latest_invoice, granted
):
    """The latest invoice read with the subscription (billing/event_objects.py) settles it
    when it bills the new price to the period's end; otherwise the proration waiting for a
    later invoice is looked for, as before."""
    link(owner)
    sync.subscription_apply(subscription(), observed_at=datetime.now(tz=UTC), idempotency_key="a")
    asked = []
    pending = {"amount": 2900, "parent": {"subscription_details": {"subscription": "sub_1"}}}

    def invoice_items_pending(customer):
        asked.append(customer)
        return [pending]

    monkeypatch.setattr(sync.gateway, "invoice_items_pending", invoice_items_pending)
    sync.subscription_apply(
        subscription("elite_monthly", price_id="price_elite", latest_invoice=latest_invoice),
        observed_at=datetime.now(tz=UTC),
        idempotency_key="b",
    )
    assert CreditAccount.objects.get(user=owner).tier == ("elite" if granted else "pro")
    assert asked == ([] if granted or latest_invoice["status"] == "open" else ["cus_1"])


def test_a_downgrade_takes_effect_when_stripe_switches_the_price(owner):
    link(owner)
    sync.subscription_apply(
        subscription("elite_monthly"), observed_at=datetime.now(tz=UTC), idempotency_key="a"
    )
    sync.subscription_apply(subscription(), observed_at=datetime.now(tz=UTC), idempotency_key="b")
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.monthly_allowance, account.pending_tier) == ("pro", 500, "")


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
    assert entry is not None and entry.purchased_delta == 500
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


def test_partial_refunds_claw_back_only_the_new_share(owner, stripe_payments):
    link(owner)
    sync.checkout_completed_apply(paid_bundle_session(), event_id="evt_1")
    charge = {"id": "ch_1", "payment_intent": "pi_cs_1", "amount": 1000, "amount_refunded": 400}
    stripe_payments["refunds"]["pi_cs_1"] = [refund(400)]
    sync.charge_refunded_apply(charge, event_id="evt_2")
    sync.charge_refunded_apply(charge, event_id="evt_2b")  # the same state again: nothing new
    assert CreditAccount.objects.get(user=owner).purchased_balance == 150
    stripe_payments["refunds"]["pi_cs_1"] = [refund(400), refund(600)]
    sync.charge_refunded_apply(charge, event_id="evt_3")  # Stripe's word, not the event's
    assert CreditAccount.objects.get(user=owner).purchased_balance == 0


def test_a_failed_refund_gives_back_what_its_clawback_took(owner, stripe_payments):
    link(owner)
    sync.checkout_completed_apply(paid_bundle_session(), event_id="evt_1")
    stripe_payments["refunds"]["pi_cs_1"] = [refund(400, "pending")]
    sync.refund_changed_apply(refund(400), event_id="evt_2")
    assert CreditAccount.objects.get(user=owner).purchased_balance == 150
    stripe_payments["refunds"]["pi_cs_1"] = [refund(400, "failed")]
    entry = sync.refund_changed_apply(refund(400), event_id="evt_3")
    assert entry is not None
    assert (entry.kind, entry.purchased_delta) == ("clawback_reversal", 100)
    assert sync.refund_changed_apply(refund(400), event_id="evt_3") is None
    assert CreditAccount.objects.get(user=owner).purchased_balance == 250


def test_a_refund_of_something_that_is_not_a_bundle_changes_nothing(owner):
    charge = {"id": "ch_9", "payment_intent": "pi_subscription", "amount": 1900}
    assert sync.charge_refunded_apply(charge | {"amount_refunded": 1900}, event_id="e") is None


def test_a_dispute_claws_back_the_disputed_share(owner, stripe_payments):
    link(owner)
    sync.checkout_completed_apply(paid_bundle_session(), event_id="evt_1")
    inquiry = dispute_with(status="warning_needs_response")
    stripe_payments["disputes"]["pi_cs_1"] = [inquiry]
    assert sync.dispute_apply(inquiry, event_id="evt_3") is None  # no money moved
    chargeback = dispute_with(-1000)
    stripe_payments["disputes"]["pi_cs_1"] = [chargeback]
    entry = sync.dispute_apply(chargeback, event_id="evt_4")
    assert entry is not None and entry.details["taken"] == 250
    assert sync.dispute_apply(chargeback, event_id="evt_4") is None
    assert sync.dispute_apply(chargeback | {"payment_intent": "pi_other"}, event_id="e") is None
    stripe_payments["disputes"]["pi_cs_1"] = [dispute_with(-1000, 1000, status="won")]
    entry = sync.dispute_apply(chargeback, event_id="evt_5")  # the event is stale: Stripe won
    assert entry is not None
    assert (entry.kind, entry.purchased_delta) == ("clawback_reversal", 250)
    assert CreditAccount.objects.get(user=owner).purchased_balance == 250


def test_a_refund_already_on_the_charge_is_clawed_back_when_the_checkout_arrives(
    owner, stripe_payments
):
    link(owner)
    charge = {"id": "ch_1", "payment_intent": "pi_cs_1", "amount": 1000, "amount_refunded": 1000}
    stripe_payments["refunds"]["pi_cs_1"] = [refund(1000)]
    assert sync.charge_refunded_apply(charge, event_id="evt_refund") is None  # no purchase yet
    sync.checkout_completed_apply(paid_bundle_session(), event_id="evt_1")
    sync.charge_refunded_apply(charge, event_id="evt_refund_retry")  # a retry: nothing more
    assert CreditAccount.objects.get(user=owner).purchased_balance == 0
    assert LedgerEntry.objects.filter(user=owner, kind="clawback").count() == 1
