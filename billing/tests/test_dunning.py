"""Past due: the banner on every page, "Pay now" and "Update card", and a new card paying the
open invoice at once (issue 16), on the offline Stripe through the pages and the webhook."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from activities.models import LedgerEntry
from billing.tests.harness import PlayedOnce, checkout_and_pay
from subscriptions.models import CreditAccount

DAY, HOUR = 86400, 3600
pytestmark = pytest.mark.django_db


def open_invoice_of(emulator, account) -> dict:
    [invoice] = [
        i
        for i in emulator.store.all("invoice")
        if i["customer"] == account.stripe_customer_id and i["status"] == "open"
    ]
    return invoice


def new_default_card(owner_client, emulator, number: str) -> None:
    """The customer saves a card on the offline Stripe's portal page, as in a browser."""
    response = owner_client.post("/billing/portal/")
    path = "/portal/" + response["Location"].rsplit("/", 1)[-1]
    body = urlencode({"action": "card", "card_number": number})
    emulator.handle("POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, body)


def card_updated_url(owner_client, emulator) -> str:
    """Where our portal session sends the customer back (the return URL we gave Stripe)."""
    response = owner_client.post("/billing/portal/")
    assert response.status_code == 303
    session_id = response["Location"].rsplit("/", 1)[-1]
    return_url = emulator.store.get(session_id)["return_url"]
    assert urlsplit(return_url).path == "/billing/card-updated/"
    return return_url


def test_no_banner_while_paid_up(owner, owner_client, stripe_harness):
    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro"})
    assert "payment for Pro failed" not in owner_client.get("/pricing/").content.decode()


# --- after the end -------------------------------------------------------------------------


def test_a_customer_who_cancelled_is_told_so_and_keeps_purchased_credits(
    owner, owner_client, stripe_harness
):
    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro"})
    checkout_and_pay(owner_client, stripe_harness, {"bundle": "credits_250"})
    response = owner_client.post("/billing/subscription/cancel/", {"immediate": "on"})
    assert response.status_code in (302, 303)
    stripe_harness.deliver()
    body = owner_client.get("/billing/").content.decode()
    assert "Your Pro plan ended on" in body and "You cancelled it." in body
    assert "Your 250 purchased credits stay yours." in body


def test_a_cancellation_made_at_stripe_is_not_called_the_customers(
    owner, owner_client, stripe_harness
):
    import stripe

    from billing.tests.harness import SECRET_KEY

    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro"})
    account = CreditAccount.objects.get(user=owner)
    stripe.Subscription.cancel(account.stripe_subscription_id, api_key=SECRET_KEY)
    stripe_harness.deliver()
    body = owner_client.get("/billing/").content.decode()
    assert "It was cancelled at Stripe (in the billing portal or by our support team)." in body
    assert "You cancelled it." not in body


def test_pay_now_works_before_the_invoices_own_event_has_arrived(
    owner, owner_client, stripe_harness
):
    """The subscription's past_due may land before the invoice's events: "Pay now" is there
    anyway and finds the open invoice at Stripe on the click."""
    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro"}, card="4000000000000341")
    stripe_harness.emulator.advance_clock(31 * DAY + HOUR)
    stripe_harness.queued = [
        d for d in stripe_harness.queued if d.event["type"].startswith("customer.subscription.")
    ]
    stripe_harness.deliver()
    account = CreditAccount.objects.get(user=owner)
    assert account.subscription_status == "past_due"
    body = owner_client.get("/pricing/").content.decode()
    assert 'href="/billing/pay-now/"' in body
    response = owner_client.get("/billing/pay-now/")
    invoice = open_invoice_of(stripe_harness.emulator, account)
    assert response.status_code == 302 and response["Location"] == invoice["hosted_invoice_url"]


def test_pay_now_with_nothing_owed_says_so(owner, owner_client, stripe_harness):
    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro"})
    response = owner_client.get("/billing/pay-now/", follow=True)
    assert "There is nothing to pay right now." in response.content.decode()


def renewal_failed(owner, harness) -> None:
    """Pro paid with a card that fails at the renewal; the renewal has failed."""
    from conftest import logged_in

    checkout_and_pay(logged_in(owner), harness, {"tier": "pro"}, card="4000000000000341")
    harness.emulator.advance_clock(31 * DAY + HOUR)  # the renewal is charged an hour in
    harness.deliver()


@pytest.mark.xdist_group("dunning_past_due")
class TestPastDue(PlayedOnce):
    """Each test starts past due: ``renewal_failed`` played once for the class."""

    life = staticmethod(renewal_failed)

    @pytest.fixture
    def past_due(self, owner, stripe_harness):
        account = CreditAccount.objects.get(user=owner)
        assert (account.tier, account.subscription_status) == ("pro", "past_due")
        return account

    @pytest.mark.parametrize("page", ["/", "/pricing/", "/billing/", "/activity/"])
    def test_every_page_shows_the_banner_with_pay_now_and_update_card(
        self, past_due, owner_client, stripe_harness, page
    ):
        invoice = open_invoice_of(stripe_harness.emulator, past_due)
        body = owner_client.get(page, follow=True).content.decode()
        assert "Your last payment for Pro failed." in body
        assert f'href="{invoice["hosted_invoice_url"]}"' in body and "Pay now ($19)" in body
        assert 'action="/billing/portal/"' in body and "Update card" in body

    def test_pricing_offers_no_plan_change_while_an_invoice_is_open(self, past_due, owner_client):
        body = owner_client.get("/pricing/").content.decode()
        assert "Plan changes open again once the open invoice is paid." in body
        assert 'action="/billing/change-plan/"' not in body

    def test_back_from_the_portal_with_a_new_card_the_invoice_is_paid_at_once(
        self, past_due, owner, owner_client, stripe_harness
    ):
        emulator = stripe_harness.emulator
        return_url = card_updated_url(owner_client, emulator)
        invoice = open_invoice_of(emulator, past_due)
        new_default_card(owner_client, emulator, "4242424242424242")
        # Back from the portal before any webhook has landed: the page pays and is right at once.
        parts = urlsplit(return_url)
        response = owner_client.get(f"{parts.path}?{parts.query}", follow=True)
        body = response.content.decode()
        assert "Payment received: your plan is active again." in body
        assert "payment for Pro failed" not in body
        assert emulator.store.get(invoice["id"])["status"] == "paid"
        account = CreditAccount.objects.get(user=owner)
        assert (account.tier, account.subscription_status, account.remaining) == (
            "pro",
            "active",
            500,
        )
        rows = LedgerEntry.objects.filter(user=owner).count()
        stripe_harness.deliver()  # Stripe's events, the customer.updated one included
        assert LedgerEntry.objects.filter(user=owner).count() == rows  # nothing twice
        paid = [i for i in emulator.store.all("invoice") if i["id"] == invoice["id"]]
        assert paid[0]["status"] == "paid"

    def test_a_declined_new_card_says_so_and_changes_nothing(
        self, past_due, owner, owner_client, stripe_harness
    ):
        emulator = stripe_harness.emulator
        return_url = card_updated_url(owner_client, emulator)
        new_default_card(owner_client, emulator, "4000000000000002")
        body = owner_client.get(
            urlsplit(return_url).path + "?" + urlsplit(return_url).query, follow=True
        )
        assert "The new card was declined" in body.content.decode()
        assert open_invoice_of(emulator, past_due)["status"] == "open"
        assert CreditAccount.objects.get(user=owner).subscription_status == "past_due"

    def test_the_return_page_pays_only_with_our_portal_sessions_token(
        self, past_due, owner_client, stripe_harness
    ):
        emulator = stripe_harness.emulator
        return_url = card_updated_url(owner_client, emulator)
        token = parse_qs(urlsplit(return_url).query)["t"][0]
        new_default_card(owner_client, emulator, "4242424242424242")
        for forged in ("", "?t=", f"?t={token}x", "?t=1:abc:def"):
            owner_client.get(f"/billing/card-updated/{forged}")
        assert open_invoice_of(emulator, past_due)["status"] == "open"

    def test_a_card_changed_elsewhere_pays_through_the_webhook(
        self, past_due, owner, owner_client, stripe_harness
    ):
        emulator = stripe_harness.emulator
        invoice = open_invoice_of(emulator, past_due)
        new_default_card(owner_client, emulator, "4242424242424242")
        stripe_harness.deliver()  # customer.updated with the new default card
        assert emulator.store.get(invoice["id"])["status"] == "paid"
        account = CreditAccount.objects.get(user=owner)
        assert (account.tier, account.subscription_status) == ("pro", "active")

    def test_after_the_retries_run_out_the_page_says_why_and_offers_the_way_back(
        self, past_due, owner, owner_client, stripe_harness
    ):
        stripe_harness.emulator.advance_clock(30 * DAY)  # Stripe's retries run out: cancelled
        stripe_harness.deliver()
        account = CreditAccount.objects.get(user=owner)
        assert account.tier == "free"
        body = owner_client.get("/billing/").content.decode()
        assert "Your Pro plan ended on" in body
        assert "The payment for it failed and Stripe&#x27;s retries ran out." in body
        assert "You are on the free plan: 50 credits a month." in body
        assert ("is still open at Stripe" in body) or ("written off" in body)
        assert "Subscribe to Pro again" in body
        assert "payment for Pro failed" not in body  # no past-due banner once it has ended
        again = owner_client.post("/billing/checkout/", {"tier": "pro"})
        assert again.status_code == 303 and "/checkout/cs_" in again["Location"]
