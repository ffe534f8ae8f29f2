"""The POST actions behind the billing pages, against the offline Stripe (and patched
services for the failures Stripe does not produce on demand)."""

from __future__ import annotations

import pytest

from billing import services
from billing.gateway import StripeUnavailable
from billing.tests.harness import checkout_and_pay
from subscriptions.errors import InsufficientCredits
from subscriptions.models import CreditAccount

pytestmark = pytest.mark.django_db

ACTIONS = [
    "/billing/checkout/",
    "/billing/change-plan/",
    "/billing/portal/",
    "/billing/subscription/cancel/",
    "/billing/subscription/resume/",
]


@pytest.mark.parametrize("url", ACTIONS)
def test_actions_need_a_login(client, url):
    response = client.post(url, {"tier": "pro"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("url", [url for url in ACTIONS if "change-plan" not in url])
def test_actions_are_post_only(owner_client, url):
    assert owner_client.get(url).status_code == 405


def test_checkout_for_a_plan_goes_to_stripe_and_the_webhook_makes_it_pro(
    owner, owner_client, stripe_harness, monkeypatch
):
    from billing import gateway

    response = owner_client.post("/billing/checkout/", {"tier": "pro", "interval": "month"})
    assert response.status_code == 303
    assert response["Location"].startswith(stripe_harness.emulator.base_url)
    stripe_harness.deliver()
    # Back from Stripe before the webhook, and Stripe does not answer the page: it waits.
    session_id = response["Location"].rsplit("/", 1)[-1]
    stripe_harness.emulator.complete_checkout(session_id, card="4242424242424242")

    def unreachable(session_id):
        raise gateway.StripeUnavailable()

    monkeypatch.setattr(gateway, "checkout_session_retrieve_on_return", unreachable)
    waiting = owner_client.get(f"/billing/success/?session_id={session_id}").content.decode()
    assert "Activating" in waiting and "You are on Pro" not in waiting
    stripe_harness.deliver()
    done = owner_client.get(f"/billing/success/?session_id={session_id}").content.decode()
    assert "You are on Pro with 500 credits left." in done
    assert "Pro plan" in owner_client.get("/billing/").content.decode()


def test_buying_a_bundle_adds_250_credits(owner, owner_client, stripe_harness):
    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro", "interval": "month"})
    session_id = checkout_and_pay(owner_client, stripe_harness, {"bundle": "credits_250"})
    html = owner_client.get(f"/billing/success/?session_id={session_id}").content.decode()
    assert "You are on Pro with 750 credits left." in html
    assert CreditAccount.objects.get(user=owner).purchased_balance == 250


def test_a_free_account_cannot_buy_a_bundle(owner_client, stripe_harness):
    response = owner_client.post("/billing/checkout/", {"bundle": "credits_250"})
    assert response.status_code == 403
    html = response.content.decode()
    assert "Credit bundles come with paid plans" in html and 'href="/pricing/"' in html


def test_a_subscriber_cannot_start_a_second_subscription(owner_client, stripe_harness):
    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro", "interval": "month"})
    response = owner_client.post("/billing/checkout/", {"tier": "elite", "interval": "month"})
    assert response.status_code == 409
    assert "change your plan instead" in response.content.decode()


def test_checkout_rejects_a_tier_that_is_not_for_sale(owner_client, stripe_harness):
    response = owner_client.post("/billing/checkout/", {"tier": "platinum"})
    assert response.status_code == 400
    assert "Unknown plan" in response.content.decode()
    assert owner_client.post("/billing/checkout/", {}).status_code == 400


def test_upgrade_downgrade_cancel_and_resume(owner, owner_client, stripe_harness):
    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro", "interval": "month"})
    response = owner_client.post(
        "/billing/change-plan/", {"tier": "elite", "interval": "month"}, follow=True
    )
    assert "You are now on Elite." in response.content.decode()
    stripe_harness.deliver()
    assert CreditAccount.objects.get(user=owner).tier == "elite"

    response = owner_client.post("/billing/subscription/cancel/", follow=True)
    assert "will end with the paid period" in response.content.decode()
    stripe_harness.deliver()
    assert "Cancels on" in owner_client.get("/billing/").content.decode()

    owner_client.post("/billing/subscription/resume/")
    stripe_harness.deliver()
    html = owner_client.get("/billing/").content.decode()
    assert "Cancels on" not in html and "Renews on" in html


def test_manage_billing_opens_the_portal(owner_client, stripe_harness):
    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro", "interval": "month"})
    response = owner_client.post("/billing/portal/")
    assert response.status_code == 303
    assert response["Location"].startswith(stripe_harness.emulator.base_url)


def test_manage_billing_without_a_customer_goes_to_pricing(owner_client, stripe_harness):
    response = owner_client.post("/billing/portal/", follow=True)
    assert response.redirect_chain == [("/pricing/", 302)]
    assert "choose a plan first" in response.content.decode()


def test_plan_actions_without_a_subscription_explain_themselves(owner_client, stripe_harness):
    response = owner_client.post("/billing/subscription/cancel/")
    assert response.status_code == 400
    assert "You have no active subscription" in response.content.decode()


def test_stripe_unreachable_is_a_503_page_with_a_way_back(owner_client, monkeypatch):
    def down(**kwargs):
        raise StripeUnavailable()

    monkeypatch.setattr(services, "checkout_session_create", down)
    response = owner_client.post(
        "/billing/checkout/", {"tier": "pro", "interval": "month", "next": "/pricing/"}
    )
    assert response.status_code == 503
    html = response.content.decode()
    assert "Payments are unreachable right now" in html
    assert "try again in a minute" in html
    assert 'href="/pricing/">Go back' in html


def test_stripe_not_configured_is_a_503(owner_client, settings):
    settings.STRIPE_TEST_SECRET_KEY = ""
    response = owner_client.post("/billing/checkout/", {"tier": "pro", "interval": "month"})
    assert response.status_code == 503
    assert "not configured" in response.content.decode()


def test_insufficient_credits_offers_to_buy_more(owner_client, monkeypatch):
    def short(**kwargs):
        raise InsufficientCredits(required=10, remaining=0)

    monkeypatch.setattr(services, "subscription_resume", short)
    response = owner_client.post("/billing/subscription/resume/")
    assert response.status_code == 402
    html = response.content.decode()
    assert "Not enough credits" in html and "Buy credits" in html


def test_a_back_link_to_another_site_is_ignored(owner_client, monkeypatch):
    def down(**kwargs):
        raise StripeUnavailable()

    monkeypatch.setattr(services, "subscription_resume", down)
    response = owner_client.post("/billing/subscription/resume/", {"next": "https://evil.test/"})
    assert 'href="/billing/">Go back' in response.content.decode()


def test_actions_are_rate_limited_like_the_api(owner_client, monkeypatch):
    calls = []
    monkeypatch.setattr(services, "subscription_resume", lambda **kw: calls.append(kw))
    statuses = [owner_client.post("/billing/subscription/resume/").status_code for _ in range(21)]
    assert statuses[:20] == [302] * 20
    assert statuses[20] == 429
    assert len(calls) == 20


def test_actions_need_the_csrf_token(owner):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post("/billing/checkout/", {"tier": "pro"}).status_code == 403


def test_the_cancel_page_says_nothing_was_charged(owner_client):
    html = owner_client.get("/billing/cancel/").content.decode()
    assert "Nothing was charged" in html


@pytest.mark.parametrize("url", ["/billing/success/?session_id=cs_1", "/billing/cancel/"])
def test_return_pages_need_a_login(client, url):
    assert client.get(url)["Location"].startswith("/login/")


def test_a_success_page_for_someone_elses_session_only_waits(
    owner_client, other_client, stripe_harness
):
    session_id = checkout_and_pay(
        owner_client, stripe_harness, {"tier": "pro", "interval": "month"}
    )
    html = other_client.get(f"/billing/success/?session_id={session_id}").content.decode()
    assert 'data-activated="false"' in html and "Activating" in html


def test_a_plan_change_is_confirmed_first_and_the_preview_changes_nothing(
    owner, owner_client, stripe_harness
):
    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro", "interval": "month"})
    up = owner_client.get("/billing/change-plan/", {"tier": "elite", "interval": "month"})
    html = up.content.decode()
    assert up.status_code == 200
    assert "Switch to Elite monthly?" in html and "$49 / month" in html
    assert "Stripe charges $30 to your card on file today" in html  # Stripe's own preview
    assert 'method="post" action="/billing/change-plan/"' in html
    assert stripe_harness.queued == []  # nothing was asked of Stripe, so no events
    assert CreditAccount.objects.get(user=owner).tier == "pro"

    yearly = owner_client.get("/billing/change-plan/", {"tier": "pro", "interval": "year"})
    assert "to your card on file today" in yearly.content.decode()


def test_a_downgrade_preview_says_when_it_applies(owner, owner_client):
    CreditAccount.objects.filter(user=owner).update(
        tier="elite",
        subscription_status="active",
        stripe_subscription_id="sub_1",
        billing_interval="month",
    )
    html = owner_client.get(
        "/billing/change-plan/", {"tier": "pro", "interval": "month"}
    ).content.decode()
    assert "You keep Elite until" in html and "Nothing is charged today" in html
    same = owner_client.get("/billing/change-plan/", {"tier": "elite", "interval": "month"})
    assert "You are already on Elite" in same.content.decode()


def test_the_preview_without_a_subscription_points_to_pricing(owner_client):
    html = owner_client.get(
        "/billing/change-plan/", {"tier": "pro", "interval": "month"}
    ).content.decode()
    assert "You have no subscription to change" in html


def test_the_preview_rejects_what_is_not_for_sale(owner_client):
    response = owner_client.get("/billing/change-plan/", {"tier": "free", "interval": "month"})
    assert response.status_code == 400
