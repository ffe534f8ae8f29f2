"""End-to-end flows: our API -> the offline Stripe -> signed webhooks -> tier and credits."""

from __future__ import annotations

import pytest

from billing.tests.harness import (
    SECRET_KEY,
    buy_bundle,
    checkout,
    payment_intent_of,
    spend,
    subscribe_pro,
    tier_info,
)
from subscriptions.models import CreditAccount

DAY = 86400
HOUR = 3600


def test_subscribe_pro_through_checkout_grants_500_credits(api, owner, stripe_harness):
    subscribe_pro(api, stripe_harness)
    data = tier_info(api)
    assert data["tier"] == "pro"
    assert data["credits"]["monthly"] == 500 and data["credits"]["remaining"] == 500
    account = CreditAccount.objects.get(user=owner)
    assert account.subscription_status == "active"
    assert account.stripe_subscription_id.startswith("sub_")


def test_the_whole_journey(api, owner, stripe_harness):
    """register -> pro -> bundle -> spend -> renewal resets -> cancel -> free."""
    subscribe_pro(api, stripe_harness)
    buy_bundle(api, stripe_harness)
    assert tier_info(api)["credits"]["remaining"] == 750
    spend(api, 520)
    credits = tier_info(api)["credits"]
    assert (credits["used"], credits["purchased"], credits["remaining"]) == (500, 230, 230)

    stripe_harness.emulator.advance_clock(32 * DAY)
    stripe_harness.deliver()
    credits = tier_info(api)["credits"]
    assert (credits["used"], credits["purchased"], credits["remaining"]) == (0, 230, 730)

    response = api.post("/api/billing/cancel-subscription", {}, format="json")
    assert response.status_code == 200
    stripe_harness.deliver()
    assert tier_info(api)["subscription"]["cancelAtPeriodEnd"] is True
    assert tier_info(api)["tier"] == "pro"

    stripe_harness.emulator.advance_clock(32 * DAY)
    stripe_harness.deliver()
    data = tier_info(api)
    assert data["tier"] == "free"
    assert data["credits"]["remaining"] == 50 + 230  # the free allowance; purchased credits stay


def test_bundle_credits_are_added_once_whatever_stripe_retries(api, owner, stripe_harness):
    subscribe_pro(api, stripe_harness)
    checkout(api, stripe_harness, {"bundle": "credits_250"})
    stripe_harness.deliver(duplicate=True, order="shuffled")
    for event in stripe_harness.emulator.events("checkout.session.completed"):
        stripe_harness.emulator.redeliver(event["id"])
    stripe_harness.deliver()
    assert CreditAccount.objects.get(user=owner).purchased_balance == 250


def test_bundles_need_a_paid_tier(api, stripe_harness):
    response = api.post(
        "/api/billing/create-checkout-session", {"bundle": "credits_250"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "bundle_requires_paid_tier"


def test_a_subscriber_is_sent_to_change_plan_not_a_second_subscription(api, stripe_harness):
    subscribe_pro(api, stripe_harness)
    response = api.post("/api/billing/create-checkout-session", {"tier": "elite"}, format="json")
    assert response.status_code == 409
    assert response.json()["action"] == "change_plan"


def test_the_original_spas_price_id_alias_accepts_only_catalogue_prices(api, stripe_harness):
    ok = api.post(
        "/api/billing/create-checkout-session",
        {"priceId": "pro_yearly", "mode": "subscription"},
        format="json",
    )
    assert ok.status_code == 200
    bad = api.post(
        "/api/billing/create-checkout-session",
        {"priceId": "price_123", "mode": "payment"},
        format="json",
    )
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"tier": "free"},
        {"tier": "platinum"},
        {"tier": "pro", "interval": "weekly"},
        {"tier": "pro", "bundle": "credits_250"},
        {"bundle": "credits_1000000"},
    ],
)
def test_checkout_rejects_what_is_not_in_the_catalogue(api, stripe_harness, body):
    response = api.post("/api/billing/create-checkout-session", body, format="json")
    assert response.status_code == 400


def test_checkout_without_stripe_configured_is_a_clear_503(api, settings):
    settings.STRIPE_TEST_SECRET_KEY = ""
    response = api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "stripe_not_configured"


def test_a_declined_card_leaves_the_account_free(api, owner, stripe_harness):
    from stripe_emulator import StripeError

    response = api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    with pytest.raises(StripeError):
        stripe_harness.emulator.complete_checkout(
            response.json()["sessionId"], card="4000000000000002"
        )
    stripe_harness.deliver()
    assert tier_info(api)["tier"] == "free"


def test_upgrade_takes_effect_now_and_keeps_usage(api, owner, stripe_harness):
    subscribe_pro(api, stripe_harness)
    spend(api, 100)
    response = api.post(
        "/api/billing/change-plan", {"tier": "elite", "interval": "month"}, format="json"
    )
    assert response.status_code == 200
    stripe_harness.deliver()
    credits = tier_info(api)["credits"]
    assert tier_info(api)["tier"] == "elite"
    assert (credits["monthly"], credits["used"], credits["remaining"]) == (2000, 100, 1900)


def test_downgrade_waits_for_the_renewal(api, owner, stripe_harness):
    subscribe_pro(api, stripe_harness)
    api.post("/api/billing/change-plan", {"tier": "elite"}, format="json")
    stripe_harness.deliver()
    api.post("/api/billing/change-plan", {"tier": "pro"}, format="json")
    stripe_harness.deliver()
    data = tier_info(api)
    assert (data["tier"], data["subscription"]["pendingTier"]) == ("elite", "pro")
    stripe_harness.emulator.advance_clock(32 * DAY)
    stripe_harness.deliver()
    data = tier_info(api)
    assert (data["tier"], data["credits"]["monthly"]) == ("pro", 500)


def test_cancel_now_falls_to_free_at_once(api, owner, stripe_harness):
    subscribe_pro(api, stripe_harness)
    response = api.post("/api/billing/cancel-subscription", {"immediate": True}, format="json")
    assert response.status_code == 200
    stripe_harness.deliver()
    assert tier_info(api)["tier"] == "free"


def test_resume_undoes_a_cancellation_at_period_end(api, owner, stripe_harness):
    subscribe_pro(api, stripe_harness)
    api.post("/api/billing/cancel-subscription", {}, format="json")
    stripe_harness.deliver()
    assert api.post("/api/billing/resume-subscription").status_code == 200
    stripe_harness.deliver()
    assert tier_info(api)["subscription"]["cancelAtPeriodEnd"] is False
    stripe_harness.emulator.advance_clock(32 * DAY)
    stripe_harness.deliver()
    assert tier_info(api)["tier"] == "pro"


def test_plan_actions_without_a_subscription_are_400(api, stripe_harness):
    for path in ("change-plan", "cancel-subscription", "resume-subscription"):
        response = api.post(f"/api/billing/{path}", {"tier": "pro"}, format="json")
        assert response.status_code == 400, path
        assert response.json()["code"] == "no_subscription"


def test_failed_renewal_keeps_pro_for_the_grace_period_then_falls_to_free(
    api, owner, stripe_harness
):
    subscribe_pro(api, stripe_harness, card="4000000000000341")
    buy_bundle(api, stripe_harness)
    stripe_harness.emulator.advance_clock(31 * DAY + HOUR)  # the renewal is charged an hour in
    stripe_harness.deliver()
    data = tier_info(api)
    assert data["tier"] == "pro"
    assert data["subscription"]["status"] == "past_due"
    assert data["subscription"]["paymentWarning"]
    stripe_harness.emulator.advance_clock(30 * DAY)  # Stripe's retries run out
    stripe_harness.deliver()
    data = tier_info(api)
    assert data["tier"] == "free"
    assert data["credits"]["purchased"] == 250


def test_refund_of_a_bundle_claws_back_unspent_credits(api, owner, stripe_harness):
    import stripe

    subscribe_pro(api, stripe_harness)
    session_id = buy_bundle(api, stripe_harness)
    spend(api, 600)  # 500 monthly + 100 purchased
    stripe.Refund.create(payment_intent=payment_intent_of(session_id), api_key=SECRET_KEY)
    stripe_harness.deliver()
    account = CreditAccount.objects.get(user=owner)
    assert account.purchased_balance == 0
    from activities.models import LedgerEntry

    clawback = LedgerEntry.objects.get(user=owner, kind="clawback")
    assert clawback.details == {"requested": 250, "taken": 150, "shortfall": 100}


def test_events_in_any_order_and_twice_converge(api, owner, stripe_harness):
    response = api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    stripe_harness.emulator.complete_checkout(response.json()["sessionId"])
    stripe_harness.deliver(order="reversed", duplicate=True)
    data = tier_info(api)
    assert (data["tier"], data["credits"]["remaining"]) == ("pro", 500)


def test_portal_needs_a_customer_then_returns_a_url(api, stripe_harness):
    response = api.post("/api/billing/customer-portal")
    assert response.status_code == 400
    assert response.json()["action"] == "redirect_to_pricing"
    subscribe_pro(api, stripe_harness)
    response = api.post("/api/billing/customer-portal")
    assert response.status_code == 200 and "/portal/" in response.json()["url"]


def test_subscription_invoices_and_payment_methods_for_the_spa(api, stripe_harness):
    assert api.get("/api/billing/subscription").json()["data"] is None
    subscribe_pro(api, stripe_harness)
    subscription = api.get("/api/billing/subscription").json()["data"]
    assert set(subscription) >= {
        "id",
        "status",
        "plan",
        "amount",
        "currency",
        "interval",
        "currentPeriodStart",
        "currentPeriodEnd",
        "cancelAtPeriodEnd",
    }
    assert (subscription["plan"], subscription["amount"], subscription["interval"]) == (
        "pro",
        1900,
        "month",
    )
    invoices = api.get("/api/billing/invoices").json()["data"]
    assert invoices and set(invoices[0]) == {
        "id",
        "amount",
        "currency",
        "status",
        "date",
        "description",
        "downloadUrl",
        "number",
        "hostedUrl",
        "pdfUrl",
        "statusText",
    }
    assert invoices[0]["status"] == "paid" and invoices[0]["amount"] == 1900
    methods = api.get("/api/billing/payment-methods").json()["data"]
    assert methods and methods[0]["last4"] == "4242" and methods[0]["isDefault"] is True


def test_pricing_is_public(anon, db):
    body = anon.get("/api/billing/pricing").json()["data"]
    assert {price["lookupKey"] for price in body["prices"]} >= {"pro_monthly", "credits_250"}


def test_one_stripe_customer_per_user(api, owner, stripe_harness):
    for _ in range(2):
        api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    customers = [c for c in stripe_harness.emulator.store.all("customer")]
    assert len(customers) == 1


def test_a_yearly_plan_renews_the_allowance_every_month(api, owner, stripe_harness):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    checkout(api, stripe_harness, {"tier": "pro", "interval": "year"})
    stripe_harness.deliver()
    spend(api, 500)
    assert tier_info(api)["credits"]["remaining"] == 0
    stripe_harness.emulator.advance_clock(32 * DAY)
    stripe_harness.deliver()  # no invoice in a yearly plan's second month...
    assert not [e for e in stripe_harness.delivered if e.event["type"] == "invoice.paid"][1:]
    with time_machine.travel(timezone.now() + timedelta(days=32)):
        from conftest import bearer_client

        data = bearer_client(owner).get("/api/subscription/tier-info").json()["data"]
    # ...yet the allowance renews on its own monthly.
    assert (data["tier"], data["credits"]["used"], data["credits"]["remaining"]) == ("pro", 0, 500)


def test_every_event_the_emulator_sends_is_verified_and_processed_by_dj_stripe(
    api, owner, stripe_harness
):
    import stripe
    from djstripe.models import WebhookEventTrigger

    from billing.tests.harness import SECRET_KEY, WEBHOOK_SECRET

    # Subscribed to everything ("*") rather than to what production registers, so that every
    # type the emulator sends reaches the endpoint.
    [endpoint] = stripe.WebhookEndpoint.list(api_key=SECRET_KEY).data
    stripe.WebhookEndpoint.modify(endpoint.id, enabled_events=["*"], api_key=SECRET_KEY)
    subscribe_pro(api, stripe_harness, card="4000000000000341")
    buy_bundle(api, stripe_harness)
    api.post("/api/billing/change-plan", {"tier": "elite"}, format="json")
    stripe_harness.deliver()
    stripe_harness.emulator.advance_clock(45 * DAY)  # a failed renewal and its retries
    stripe_harness.deliver()
    types = {delivery.event["type"] for delivery in stripe_harness.delivered}
    assert {
        "customer.created",
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "invoice.paid",
        "invoice.payment_failed",
        "payment_intent.succeeded",
        "charge.succeeded",
    } <= types
    for delivery in stripe_harness.delivered:
        event = stripe.Webhook.construct_event(
            delivery.body, delivery.headers["Stripe-Signature"], WEBHOOK_SECRET
        )
        assert event.id == delivery.event["id"]
    # The types we act on or show are stored and processed; the rest are acknowledged and
    # skipped.
    from billing.webhook_events import wanted

    triggers = WebhookEventTrigger.objects.all()
    kept = [d for d in stripe_harness.delivered if wanted(d.event["type"])]
    assert {"payment_intent.succeeded", "charge.succeeded", "customer.created"}.isdisjoint(
        d.event["type"] for d in kept
    )
    assert triggers.count() == len(kept)
    assert all(t.valid and t.processed and not t.exception for t in triggers)


def test_cancel_resume_cancel_before_the_webhooks_land_ends_cancelled(api, owner, stripe_harness):
    subscribe_pro(api, stripe_harness)
    for path in ("cancel-subscription", "resume-subscription", "cancel-subscription"):
        assert api.post(f"/api/billing/{path}", {}, format="json").status_code == 200
    stripe_harness.deliver()
    assert tier_info(api)["subscription"]["cancelAtPeriodEnd"] is True


def test_up_down_up_before_the_webhooks_land_ends_on_the_last_choice(api, owner, stripe_harness):
    subscribe_pro(api, stripe_harness)
    for tier in ("elite", "pro", "elite"):
        assert (
            api.post("/api/billing/change-plan", {"tier": tier}, format="json").status_code == 200
        )
    stripe_harness.deliver()
    assert tier_info(api)["tier"] == "elite"
