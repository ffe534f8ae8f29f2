"""E-mail for what a customer must not miss (issue 16): a receipt per paid invoice, one
notice per failed invoice with its pay link, one per plan change; never twice, whatever
Stripe redelivers or retries. Driven through the pages and the webhook, offline Stripe."""

from __future__ import annotations

import pytest

from activities.models import EmailSent
from billing.tests.harness import checkout_and_pay
from subscriptions.models import CreditAccount

DAY, HOUR = 86400, 3600
pytestmark = pytest.mark.django_db


@pytest.fixture
def commits(django_capture_on_commit_callbacks):
    """Runs the after-commit sends at the end of the block (the test's own transaction
    never commits)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def redeliver_everything(harness) -> None:
    for delivery in list(harness.delivered):
        assert harness.post(delivery) == 200


def test_a_subscription_and_a_bundle_get_one_receipt_each(
    owner, owner_client, stripe_harness, commits, mailoutbox
):
    with commits():
        checkout_and_pay(owner_client, stripe_harness, {"tier": "pro"})
        checkout_and_pay(owner_client, stripe_harness, {"bundle": "credits_250"})
        redeliver_everything(stripe_harness)  # Stripe's redeliveries send nothing again
    receipts = [m for m in mailoutbox if "receipt" in m.subject]
    assert len(receipts) == 2, [m.subject for m in mailoutbox]
    plan, bundle = receipts
    assert plan.to == [owner.email] and plan.subject.endswith(": $19")
    assert "Pro plan, monthly: $19" in plan.body and "/billing/" in plan.body
    assert bundle.subject.endswith(": $10") and "250 credits (credit bundle): $10" in bundle.body
    assert "&#x27;" not in plan.body and "&amp;" not in plan.body  # plain text, not HTML


def test_a_failed_renewal_is_told_once_with_the_pay_link(
    owner, owner_client, stripe_harness, commits, mailoutbox
):
    with commits():
        checkout_and_pay(owner_client, stripe_harness, {"tier": "pro"}, card="4000000000000341")
        stripe_harness.emulator.advance_clock(31 * DAY + HOUR)
        stripe_harness.deliver()
        stripe_harness.emulator.advance_clock(4 * DAY)  # Stripe's next retry fails too
        stripe_harness.deliver()
        redeliver_everything(stripe_harness)
    [failed] = [m for m in mailoutbox if "failed" in m.subject]
    customer = CreditAccount.objects.get(user=owner).stripe_customer_id
    [invoice] = [
        i
        for i in stripe_harness.emulator.store.all("invoice")
        if i["status"] == "open" and i["customer"] == customer
    ]
    assert failed.subject == "Your payment of $19 for HRVSTR failed"
    assert f"Pay now: {invoice['hosted_invoice_url']}" in failed.body
    assert "You keep Pro until" in failed.body
    assert EmailSent.objects.filter(user=owner, kind="payment_failed").count() == 1


def test_a_plan_change_is_told_once(owner, owner_client, stripe_harness, commits, mailoutbox):
    with commits():
        checkout_and_pay(owner_client, stripe_harness, {"tier": "pro"})
        response = owner_client.post(
            "/billing/change-plan/", {"tier": "elite", "interval": "month"}
        )
        assert response.status_code == 302
        stripe_harness.deliver()
        redeliver_everything(stripe_harness)
    changed = [m for m in mailoutbox if "plan is now" in m.subject]
    # Free to Pro with the first payment, then Pro to Elite: each once.
    subjects = [m.subject for m in changed]
    assert subjects == ["Your HRVSTR plan is now Pro", "Your HRVSTR plan is now Elite"]
    assert "from Pro to Elite" in changed[1].body
    assert "You now have 2,000 credits a month" in changed[1].body


def test_low_credits_are_told_once_a_period_at_the_users_threshold(
    owner, owner_client, api, commits, mailoutbox
):
    from subscriptions.services import upkeep_run

    assert owner_client.post("/billing/low-credits/", {"threshold": "20"}).status_code == 302
    with commits():
        for _ in range(3):  # 50 -> 35 -> 20 -> 5 free credits: below 20 at the third
            response = api.post(
                "/api/credits/spend",
                {"action": "ai_ticker_analysis", "quantity": 15},
                format="json",
            )
            assert response.status_code == 200
        assert upkeep_run()["low_credit_notices"] == 0  # already told this period
    [low] = [m for m in mailoutbox if "credits left" in m.subject]
    assert low.subject == "5 HRVSTR credits left" and "below the 20 you asked" in low.body


@pytest.mark.parametrize("value", ["-1", "1000001", "many", ""])
def test_a_bad_low_credit_threshold_is_a_400_and_changes_nothing(owner, owner_client, value):
    response = owner_client.post("/billing/low-credits/", {"threshold": value})
    assert response.status_code == 400
    assert CreditAccount.objects.get(user=owner).low_credit_threshold == 0


def test_the_upkeep_sweep_tells_whoever_is_below_whatever_took_the_credits(
    owner, owner_client, commits, mailoutbox
):
    from subscriptions.services import credits_adjust, upkeep_run

    owner_client.post("/billing/low-credits/", {"threshold": "40"})
    credits_adjust(user=owner, amount=-30, reason="test", staff_user=None, idempotency_key="a")
    with commits():
        assert upkeep_run()["low_credit_notices"] == 1
        assert upkeep_run()["low_credit_notices"] == 0
    assert [m.subject for m in mailoutbox] == ["20 HRVSTR credits left"]


def test_receipts_go_to_the_billing_e_mail_the_customer_set(
    owner, owner_client, stripe_harness, commits, mailoutbox
):
    """An invoice carries the customer's billing e-mail (Stripe's customer_email); our
    receipt goes where Stripe's own would."""
    from billing.customer_details import billing_details_update

    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro"})
    owner = type(owner).objects.get(pk=owner.pk)  # with the account Checkout linked
    billing_details_update(user=owner, email="accounts@acme.example")
    with commits():
        checkout_and_pay(owner_client, stripe_harness, {"bundle": "credits_250"})
    [receipt] = [m for m in mailoutbox if m.subject.endswith(": $10")]
    assert receipt.to == ["accounts@acme.example"]
