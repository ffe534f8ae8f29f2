"""The success page applies its own Checkout Session: credits before any webhook lands, and
the webhooks arriving later change nothing more."""

from __future__ import annotations

from djstripe.models import Event

from billing.tests.harness import checkout_and_pay
from subscriptions.models import CreditAccount
from subscriptions.selectors import ledger_drift


def start_and_pay(client, harness, body) -> str:
    """Checkout from the page and pay on the offline Stripe; its webhooks are held back."""
    response = client.post("/billing/checkout/", body)
    assert response.status_code == 303, response.content
    session_id = response["Location"].rsplit("/", 1)[-1]
    harness.deliver()
    harness.emulator.complete_checkout(session_id)
    return session_id


def test_a_plan_is_active_on_the_success_page_before_its_webhooks(
    owner, owner_client, stripe_harness
):
    session_id = start_and_pay(owner_client, stripe_harness, {"tier": "pro", "interval": "month"})
    assert stripe_harness.queued  # the webhooks have not been delivered
    page = owner_client.get(f"/billing/success/?session_id={session_id}")
    assert page.status_code == 200
    assert page.context["activated"] is True
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.monthly_allowance, account.remaining) == ("pro", 500, 500)
    rows = account.user.ledger_entries.count()

    stripe_harness.deliver(duplicate=True)  # the queue catches up, twice over
    account.refresh_from_db()
    assert (account.tier, account.monthly_allowance, account.remaining) == ("pro", 500, 500)
    assert account.user.ledger_entries.count() == rows
    assert ledger_drift(account=account) == {}
    owner_client.get(f"/billing/success/?session_id={session_id}")  # a reload: nothing more
    assert account.user.ledger_entries.count() == rows


def test_a_bundle_is_credited_on_the_success_page_once(owner, owner_client, stripe_harness):
    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro", "interval": "month"})
    before = CreditAccount.objects.get(user=owner).purchased_balance
    session_id = start_and_pay(owner_client, stripe_harness, {"bundle": "credits_250"})
    page = owner_client.get(f"/billing/success/?session_id={session_id}")
    assert page.context["activated"] is True
    assert CreditAccount.objects.get(user=owner).purchased_balance == before + 250
    stripe_harness.deliver(duplicate=True)
    account = CreditAccount.objects.get(user=owner)
    assert account.purchased_balance == before + 250
    assert ledger_drift(account=account) == {}
    assert Event.objects.filter(type="checkout.session.completed").exists()


def test_another_users_session_is_not_applied(
    owner, owner_client, other_client, other_user, stripe_harness
):
    session_id = start_and_pay(owner_client, stripe_harness, {"tier": "pro", "interval": "month"})
    page = other_client.get(f"/billing/success/?session_id={session_id}")
    assert page.status_code == 200 and page.context["activated"] is False
    assert CreditAccount.objects.get(user=other_user).tier == "free"
    assert CreditAccount.objects.get(user=owner).tier == "free"  # nor the payer's, from here


def test_an_unpaid_or_unknown_session_waits_for_the_webhook(owner, owner_client, stripe_harness):
    response = owner_client.post("/billing/checkout/", {"tier": "pro", "interval": "month"})
    session_id = response["Location"].rsplit("/", 1)[-1]
    assert owner_client.get(f"/billing/success/?session_id={session_id}").status_code == 200
    assert owner_client.get("/billing/success/?session_id=cs_nope").status_code == 200
    assert CreditAccount.objects.get(user=owner).tier == "free"


def test_a_bundles_receipt_is_listed_before_its_webhooks(owner, owner_client, stripe_harness):
    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro"})
    session_id = start_and_pay(owner_client, stripe_harness, {"bundle": "credits_250"})
    assert stripe_harness.queued  # the invoice's webhooks have not been delivered
    assert owner_client.get(f"/billing/success/?session_id={session_id}").status_code == 200
    html = owner_client.get("/billing/").content.decode()
    assert "250 credits (credit bundle)" in html and "(receipt)" in html
    stripe_harness.deliver()  # the same row, written again
    assert owner_client.get("/billing/").content.decode().count("(receipt)") == 1
