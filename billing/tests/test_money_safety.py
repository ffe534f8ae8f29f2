"""Issue 11: the seven money holes, walked as a customer and as an attacker would.

Each test drives the offline Stripe through its pages (Checkout, the customer portal), our API
and signed webhooks, then compares what the customer got (tier, credits) with what Stripe billed
(invoices paid, items still pending) through ``outcome()``. A failing assertion prints both.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import stripe
from django.core.management import call_command
from django.utils.timezone import now as timezone_now

from activities.models import Activity, LedgerEntry
from billing.tests.harness import SECRET_KEY, post, sign, stripe_customer_of
from subscriptions.models import CreditAccount

DAY = 86400
PRO, ELITE = 1900, 4900  # cents a month


# --- what the customer got and what Stripe billed ---------------------------------------------
def outcome(harness, user) -> dict:
    """The figures the issue asks for: the app's tier and credits, Stripe's plan and money."""
    emu = harness.emulator
    account = CreditAccount.objects.get(user=user)
    customer = account.stripe_customer_id
    subs = [s for s in emu.store.all("subscription") if s["customer"] == customer]
    live = [s for s in subs if s["status"] in ("active", "past_due", "trialing")]
    invoices = [i for i in emu.store.all("invoice") if i["customer"] == customer]
    refunds = [
        r for r in emu.store.all("refund") if (emu.store.get(r["charge"]) or {}).get("customer")
    ]
    return {
        "app_tier": account.tier,
        "app_allowance": account.monthly_allowance,
        "app_purchased": account.purchased_balance,
        "stripe_plans": sorted(s["items"]["data"][0]["price"]["lookup_key"] for s in live),
        "paid_cents": sum(i["amount_paid"] for i in invoices if i["status"] == "paid"),
        "refunded_cents": sum(r["amount"] for r in refunds if r["status"] == "succeeded"),
        "open_cents": sum(i["amount_remaining"] for i in invoices if i["status"] == "open"),
        "pending_item_cents": sum(
            ii["amount"]
            for ii in emu.store.all("invoiceitem")
            if ii["customer"] == customer and ii["invoice"] is None
        ),
    }


def report(label: str, figures: dict) -> None:
    print(f"\n[{label}] {json.dumps(figures, sort_keys=True)}")


def tier_of(lookup_key: str) -> str:
    return lookup_key.split("_")[0]


def subscribe(api, harness, tier="pro", card="4242424242424242"):
    response = api.post("/api/billing/create-checkout-session", {"tier": tier}, format="json")
    assert response.status_code == 200, response.json()
    harness.deliver()
    harness.emulator.complete_checkout(response.json()["sessionId"], card=card)
    harness.deliver()


def portal(api, harness) -> str:
    response = api.post("/api/billing/customer-portal")
    assert response.status_code == 200, response.json()
    harness.deliver()
    return "/portal/" + response.json()["url"].rsplit("/", 1)[-1]


def portal_post(harness, path, **fields) -> str:
    """Submit a form on the portal page as the customer's browser does; returns its message."""
    emu = harness.emulator
    response = emu.handle(
        "POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(fields)
    )
    assert response.status == 303
    harness.deliver()
    return response.headers["Location"]


def live_subscription(harness, user) -> dict:
    customer = CreditAccount.objects.get(user=user).stripe_customer_id
    (sub,) = [
        s
        for s in harness.emulator.store.all("subscription")
        if s["customer"] == customer and s["status"] in ("active", "past_due")
    ]
    return sub


def price_id(harness, lookup_key) -> str:
    (price,) = [p for p in harness.emulator.store.all("price") if p["lookup_key"] == lookup_key]
    return price["id"]


def portal_switch(api, harness, user, lookup_key) -> None:
    path = portal(api, harness)
    sub = live_subscription(harness, user)
    portal_post(
        harness, path, action="switch", subscription=sub["id"], price=price_id(harness, lookup_key)
    )


def app_agrees_with_stripe(figures: dict) -> bool:
    plans = figures["stripe_plans"]
    expected = tier_of(plans[0]) if plans else "free"
    return len(plans) <= 1 and figures["app_tier"] == expected


# --- 1. plan switches in the customer portal ---------------------------------------------------
def test_1_a_portal_upgrade_is_invoiced_now_and_granted_only_once_paid(api, owner, stripe_harness):
    subscribe(api, stripe_harness)
    portal_switch(api, stripe_harness, owner, "elite_monthly")
    figures = outcome(stripe_harness, owner)
    report("1 portal upgrade", figures)
    # Elite for (almost) the whole month: Pro paid, plus the prorated difference paid now.
    assert figures["app_tier"] == "elite" and figures["app_allowance"] == 2000
    assert figures["paid_cents"] >= PRO + (ELITE - PRO) * 0.99
    assert figures["pending_item_cents"] == 0 and figures["open_cents"] == 0
    assert app_agrees_with_stripe(figures)


def test_1_b_a_portal_downgrade_waits_for_the_period_end_in_stripe_and_the_app(
    api, owner, stripe_harness
):
    subscribe(api, stripe_harness)
    portal_switch(api, stripe_harness, owner, "elite_monthly")
    portal_switch(api, stripe_harness, owner, "pro_monthly")
    figures = outcome(stripe_harness, owner)
    report("1 portal downgrade, same period", figures)
    assert app_agrees_with_stripe(figures)
    assert figures["stripe_plans"] == ["elite_monthly"]  # Stripe keeps billing what was paid
    stripe_harness.emulator.advance_clock(32 * DAY)
    stripe_harness.deliver()
    after = outcome(stripe_harness, owner)
    report("1 portal downgrade, after renewal", after)
    renewal = after["paid_cents"] - figures["paid_cents"]
    assert (after["app_tier"], after["app_allowance"], renewal) == ("pro", 500, PRO)
    assert app_agrees_with_stripe(after)


def test_1_c_a_portal_upgrade_then_cancel_is_paid_for(api, owner, stripe_harness):
    subscribe(api, stripe_harness)
    portal_switch(api, stripe_harness, owner, "elite_monthly")
    path = portal(api, stripe_harness)
    sub = live_subscription(stripe_harness, owner)
    portal_post(stripe_harness, path, action="cancel_at_period_end", subscription=sub["id"])
    during = outcome(stripe_harness, owner)
    stripe_harness.emulator.advance_clock(32 * DAY)
    stripe_harness.deliver()
    after = outcome(stripe_harness, owner)
    report("1 portal upgrade then cancel (during)", during)
    report("1 portal upgrade then cancel (after)", after)
    assert during["app_tier"] == "elite"
    assert after["paid_cents"] >= PRO + (ELITE - PRO) * 0.99  # Elite's month was paid
    assert after["app_tier"] == "free" and app_agrees_with_stripe(after)


def test_1_d_the_portal_opens_with_our_configuration(api, owner, stripe_harness):
    subscribe(api, stripe_harness)
    portal(api, stripe_harness)
    (session,) = stripe_harness.emulator.store.all("billing_portal.session")
    config = stripe_harness.emulator.store.get(session["configuration"])
    update = config["features"]["subscription_update"]
    assert update["proration_behavior"] == "always_invoice"
    conditions = {c["type"] for c in update["schedule_at_period_end"]["conditions"]}
    assert conditions == {"decreasing_item_amount", "shortening_interval"}
    assert config["metadata"].get("hrvstr_portal")


# --- 2. two Checkouts opened before paying -----------------------------------------------------
def test_2_a_opening_a_second_checkout_expires_the_first(api, owner, stripe_harness):
    first = api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    second = api.post("/api/billing/create-checkout-session", {"tier": "elite"}, format="json")
    stripe_harness.deliver()
    emu = stripe_harness.emulator
    paid = []
    for response in (first, second):
        try:
            emu.complete_checkout(response.json()["sessionId"])
            paid.append(response.json()["sessionId"])
        except Exception:
            pass
    stripe_harness.deliver()
    figures = outcome(stripe_harness, owner)
    report("2 two checkouts", figures)
    assert figures["stripe_plans"] == ["elite_monthly"]
    assert figures["paid_cents"] - figures["refunded_cents"] == ELITE
    assert app_agrees_with_stripe(figures)


def test_2_b_a_second_live_subscription_is_cancelled_and_refunded_in_full(
    api, owner, stripe_harness
):
    """Two sessions made at the same instant (a race no expiry can see), both paid."""
    subscribe(api, stripe_harness)
    customer = stripe_customer_of(owner)
    session = stripe.checkout.Session.create(
        api_key=SECRET_KEY,
        mode="subscription",
        customer=customer,
        line_items=[{"price": price_id(stripe_harness, "elite_monthly"), "quantity": 1}],
        success_url="http://testserver/billing/success/",
        metadata={"hrvstr_user_id": str(owner.pk)},
        subscription_data={"metadata": {"hrvstr_user_id": str(owner.pk)}},
    )
    stripe_harness.emulator.complete_checkout(session.id)
    stripe_harness.deliver()
    stripe_harness.deliver()  # the cancellation and refund's own events
    figures = outcome(stripe_harness, owner)
    report("2 second live subscription", figures)
    assert figures["stripe_plans"] == ["pro_monthly"]  # the first one stays
    assert figures["paid_cents"] - figures["refunded_cents"] == PRO
    assert app_agrees_with_stripe(figures) and figures["app_allowance"] == 500
    assert Activity.objects.filter(user=owner, title__icontains="refund").exists()


# --- 3. forged events signed with the webhook secret -------------------------------------------
def forged(event_type: str, obj: dict) -> str:
    return json.dumps(
        {
            "id": f"evt_forged_{event_type}_{obj['id']}",
            "object": "event",
            "api_version": "2026-08-26.dahlia",
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
    )


def test_3_a_forged_checkout_completed_grants_nothing(client, owner, stripe_harness):
    session = {
        "id": "cs_test_forged",
        "object": "checkout.session",
        "mode": "payment",
        "payment_status": "paid",
        "status": "complete",
        "customer": None,
        "client_reference_id": str(owner.pk),
        "metadata": {"hrvstr_user_id": str(owner.pk)},
        "amount_total": 1000,
        "payment_intent": "pi_forged",
        "line_items": {
            "object": "list",
            "data": [{"price": {"lookup_key": "credits_250"}, "quantity": 100}],
        },
    }
    body = forged("checkout.session.completed", session)
    response = post(client, body, sign(body))
    account = CreditAccount.objects.get(user=owner)
    report("3 forged checkout", {"status": response.status_code, "purchased": account.remaining})
    assert response.status_code == 200  # acknowledged, without effect
    assert account.purchased_balance == 0
    assert not LedgerEntry.objects.filter(user=owner, kind="purchase").exists()


def test_3_b_forged_subscription_update_changes_no_tier(client, owner, stripe_harness):
    now = int(time.time())
    subscription = {
        "id": "sub_forged",
        "object": "subscription",
        "customer": "cus_forged",
        "status": "active",
        "cancel_at_period_end": False,
        "metadata": {"hrvstr_user_id": str(owner.pk)},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_forged",
                    "current_period_start": now,
                    "current_period_end": now + 30 * DAY,
                    "price": {
                        "id": "price_forged",
                        "lookup_key": "institutional_monthly",
                        "recurring": {"interval": "month"},
                    },
                }
            ],
        },
    }
    body = forged("customer.subscription.updated", subscription)
    response = post(client, body, sign(body))
    account = CreditAccount.objects.get(user=owner)
    report("3 forged subscription", {"status": response.status_code, "tier": account.tier})
    assert response.status_code == 200
    assert (account.tier, account.stripe_customer_id) == ("free", None)


def test_3_c_forged_refund_and_dispute_take_nothing(client, api, owner, stripe_harness):
    subscribe(api, stripe_harness)
    response = api.post(
        "/api/billing/create-checkout-session", {"bundle": "credits_250"}, format="json"
    )
    stripe_harness.emulator.complete_checkout(response.json()["sessionId"])
    stripe_harness.deliver()
    purchase = LedgerEntry.objects.get(user=owner, kind="purchase")
    pi = purchase.details["payment_intent"]
    charge: dict[str, object] = {"id": "ch_forged", "object": "charge", "payment_intent": pi}
    charge |= {"amount": 1000, "amount_refunded": 1000, "refunded": True}
    dispute: dict[str, object] = {"id": "dp_forged", "object": "dispute", "charge": "ch_forged"}
    dispute |= {"payment_intent": pi, "amount": 1000, "status": "needs_response"}
    body = forged("charge.refunded", charge)
    assert post(client, body, sign(body)).status_code == 200
    # The offline Stripe has no disputes API yet (issue 15): its re-fetch fails, so the
    # delivery is refused (500) instead of acknowledged; either way nothing is taken.
    body = forged("charge.dispute.created", dispute)
    assert post(client, body, sign(body)).status_code in (200, 500)
    account = CreditAccount.objects.get(user=owner)
    assert account.purchased_balance == 250


# --- 4. a customer deleted in Stripe -----------------------------------------------------------
def test_4_a_deleted_customer_is_unlinked_and_the_next_checkout_makes_a_new_one(
    api, owner, stripe_harness
):
    subscribe(api, stripe_harness)
    old = stripe_customer_of(owner)
    stripe.Customer.delete(old, api_key=SECRET_KEY)
    stripe_harness.deliver()
    account = CreditAccount.objects.get(user=owner)
    response = api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    report(
        "4 customer deleted",
        {
            "tier": account.tier,
            "customer": account.stripe_customer_id,
            "checkout": response.status_code,
        },
    )
    assert (account.tier, account.stripe_customer_id) == ("free", None)
    assert response.status_code == 200
    new = CreditAccount.objects.get(user=owner).stripe_customer_id
    assert new and new != old


def test_4_b_a_missing_customer_met_at_checkout_is_replaced(api, owner, stripe_harness):
    subscribe(api, stripe_harness)
    old = stripe_customer_of(owner)
    stripe.Customer.delete(old, api_key=SECRET_KEY)
    stripe_harness.queued.clear()  # the webhooks are lost
    response = api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    portal_response = api.post("/api/billing/customer-portal")
    report("4 customer missing", {"checkout": response.status_code})
    assert response.status_code == 200, response.json()
    assert portal_response.status_code in (200, 400)
    assert CreditAccount.objects.get(user=owner).stripe_customer_id not in (None, old)


def test_4_c_resync_clears_a_deleted_customer(api, owner, staff, stripe_harness):
    from billing.services import account_resync_from_stripe

    subscribe(api, stripe_harness)
    stripe.Customer.delete(stripe_customer_of(owner), api_key=SECRET_KEY)
    stripe_harness.queued.clear()
    account = CreditAccount.objects.get(user=owner)
    account_resync_from_stripe(account=account, staff_user=staff)
    account.refresh_from_db()
    assert (account.tier, account.stripe_customer_id) == ("free", None)


# --- 5. reconcile --fix against Stripe's clock -------------------------------------------------
def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_5_reconcile_fix_repairs_under_a_stripe_clock_ahead_of_ours(api, owner, stripe_harness):
    subscribe(api, stripe_harness)
    stripe_harness.emulator.advance_clock(40 * DAY)  # Stripe's clock (a test clock) runs ahead
    stripe_harness.deliver()
    sub = live_subscription(stripe_harness, owner)
    stripe.Subscription.cancel(sub["id"], api_key=SECRET_KEY)
    stripe_harness.queued.clear()  # the cancellation's webhook is lost
    fix = run("reconcile_billing", "--fix")
    again = run("reconcile_billing")
    figures = outcome(stripe_harness, owner)
    report("5 reconcile --fix", {"fix": fix.strip().splitlines()[-1], "again": again.strip()})
    assert "fixed: 1" in fix and "drifted: 0" in again
    assert app_agrees_with_stripe(figures) and figures["app_tier"] == "free"


def test_5_b_reconcile_counts_only_what_it_repaired(api, owner, stripe_harness, monkeypatch):
    from subscriptions import services

    subscribe(api, stripe_harness)
    CreditAccount.objects.filter(user=owner).update(tier="free", subscription_status="canceled")
    monkeypatch.setattr(services, "subscription_sync", lambda **kwargs: None)
    monkeypatch.setattr("billing.sync.services.subscription_sync", lambda **kwargs: None)
    fix = run("reconcile_billing", "--fix")
    assert "fixed: 0" in fix


# --- 6. free after the grace period while Stripe still retries ---------------------------------
def test_6_free_after_grace_while_stripe_retries_is_not_drift(api, owner, stripe_harness):
    import time_machine

    from conftest import bearer_client

    subscribe(api, stripe_harness, card="4000000000000341")
    stripe_harness.emulator.advance_clock(31 * DAY + 2 * 3600)  # renewals are charged an hour in
    stripe_harness.deliver()
    account = CreditAccount.objects.get(user=owner)
    assert account.grace_until is not None  # the renewal failed: grace started
    with time_machine.travel(account.grace_until + timedelta(minutes=1)):
        data = bearer_client(owner).get("/api/subscription/tier-info").json()["data"]
        reconcile = run("reconcile_billing")
    report("6 after grace", {"tier": data["tier"], "reconcile": reconcile.strip()})
    assert data["tier"] == "free"
    assert live_subscription(stripe_harness, owner)["status"] == "past_due"
    assert "drifted: 0" in reconcile


# --- 7. upgrades wait for the money ------------------------------------------------------------
def test_7_an_upgrade_whose_charge_fails_keeps_the_old_plan(api, owner, stripe_harness):
    subscribe(api, stripe_harness)
    path = portal(api, stripe_harness)
    portal_post(stripe_harness, path, action="card", card_number="4000 0000 0000 0341")
    response = api.post("/api/billing/change-plan", {"tier": "elite"}, format="json")
    stripe_harness.deliver()
    figures = outcome(stripe_harness, owner)
    report("7 failed upgrade charge", {**figures, "change_plan": response.status_code})
    assert figures["stripe_plans"] == ["pro_monthly"]
    assert (figures["app_tier"], figures["app_allowance"]) == ("pro", 500)
    assert app_agrees_with_stripe(figures)


def test_7_b_a_portal_upgrade_whose_charge_fails_is_not_granted(api, owner, stripe_harness):
    subscribe(api, stripe_harness)
    path = portal(api, stripe_harness)
    portal_post(stripe_harness, path, action="card", card_number="4000 0000 0000 0341")
    portal_switch(api, stripe_harness, owner, "elite_monthly")
    figures = outcome(stripe_harness, owner)
    report("7 failed portal upgrade charge", figures)
    assert (figures["app_tier"], figures["app_allowance"]) == ("pro", 500)


# --- reconcile_billing: the new checks -----------------------------------------------------------
def test_reconcile_lists_and_ends_a_second_live_subscription(api, owner, stripe_harness):
    subscribe(api, stripe_harness)
    customer = stripe_customer_of(owner)
    stripe_harness.emulator.advance_clock(60)  # a minute later: the first stays the oldest
    session = stripe.checkout.Session.create(
        api_key=SECRET_KEY,
        mode="subscription",
        customer=customer,
        line_items=[{"price": price_id(stripe_harness, "elite_monthly"), "quantity": 1}],
        success_url="http://testserver/billing/success/",
    )
    stripe_harness.emulator.complete_checkout(session.id)
    stripe_harness.queued.clear()  # its webhooks are lost
    report_ = run("reconcile_billing")
    assert "live_subscriptions ours=1 stripe=2" in report_ and "drifted: 1" in report_
    assert "fixed: 1" in run("reconcile_billing", "--fix")
    stripe_harness.deliver()
    figures = outcome(stripe_harness, owner)
    assert figures["stripe_plans"] == ["pro_monthly"]
    assert figures["paid_cents"] - figures["refunded_cents"] == PRO
    assert "drifted: 0" in run("reconcile_billing")


def test_reconcile_flags_a_paid_tier_without_a_stripe_customer(owner, stripe_harness):
    from subscriptions import services

    services.subscription_sync(
        user=owner,
        state=services.SubscriptionState(
            subscription_id="sub_nowhere",
            status="active",
            tier="elite",
            price_lookup_key="elite_monthly",
            interval="month",
            period_start=timezone_now(),
            period_end=timezone_now() + timedelta(days=30),
            cancel_at_period_end=False,
            observed_at=timezone_now(),
        ),
        idempotency_key="no-customer",
    )
    report_ = run("reconcile_billing")
    assert "tier (no Stripe customer) ours='elite' stripe='free'" in report_
    assert "fixed: 1" in run("reconcile_billing", "--fix")
    assert CreditAccount.objects.get(user=owner).tier == "free"
    assert "drifted: 0" in run("reconcile_billing")


def test_reconcile_checks_every_bundle_against_its_session_and_payment(api, owner, stripe_harness):
    from subscriptions import services

    subscribe(api, stripe_harness)
    response = api.post(
        "/api/billing/create-checkout-session", {"bundle": "credits_250"}, format="json"
    )
    stripe_harness.emulator.complete_checkout(response.json()["sessionId"])
    stripe_harness.deliver()
    assert "drifted: 0" in run("reconcile_billing")  # a real purchase is in order
    # A purchase nobody paid for (what a forged event left before this fix).
    services.credits_purchase_add(
        user=owner,
        credits=25_000,
        idempotency_key="checkout:cs_test_forged",
        source="cs_test_forged",
        reason="Bought 25000 credits",
        payment_intent="pi_forged",
        amount_cents=1000,
    )
    report_ = run("reconcile_billing")
    assert "purchase cs_test_forged ours=25000 stripe='no such Checkout Session'" in report_
    assert "fixed: 1" in run("reconcile_billing", "--fix")
    account = CreditAccount.objects.get(user=owner)
    assert account.purchased_balance == 250
    assert "drifted: 0" in run("reconcile_billing")


def test_the_deploy_check_knows_our_portal_configuration(stripe_harness):
    from billing.catalogue_sync import portal_configuration_find
    from billing.checks import stripe_portal_check

    assert stripe_portal_check() == []
    config = portal_configuration_find()
    assert config is not None
    stripe.billing_portal.Configuration.modify(
        config["id"],
        features={"subscription_update": {"proration_behavior": "none"}},
        api_key=SECRET_KEY,
    )
    errors = stripe_portal_check()
    assert [e.id for e in errors] == ["billing.E005"]
    assert "proration_behavior is 'none'" in errors[0].msg
    from django.core.cache import cache

    from billing.services import PortalNotConfigured, portal_configuration_id

    cache.clear()
    with pytest.raises(PortalNotConfigured):  # the portal stays shut meanwhile
        portal_configuration_id()
    assert "portal updated" in run("stripe_sync_catalogue")
    assert stripe_portal_check() == []
    assert portal_configuration_id() == config["id"]


def test_the_portal_refuses_to_open_without_our_configuration(api, owner, stripe_harness):
    subscribe(api, stripe_harness)
    for config in stripe_harness.emulator.store.all("billing_portal.configuration"):
        config["active"] = False
    from django.core.cache import cache

    cache.clear()
    response = api.post("/api/billing/customer-portal")
    assert response.status_code == 503 and response.json()["code"] == "portal_not_configured"


def test_a_free_account_whose_customer_is_deleted_gets_no_fresh_allowance(
    api, owner, stripe_harness
):
    api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    stripe_harness.deliver()
    customer = stripe_customer_of(owner)
    rows = LedgerEntry.objects.filter(user=owner).count()
    stripe.Customer.delete(customer, api_key=SECRET_KEY)
    stripe_harness.deliver()
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.stripe_customer_id) == ("free", None)
    assert LedgerEntry.objects.filter(user=owner).count() == rows


def test_credits_spent_before_the_first_invoice_lands_stay_spent(api, owner, stripe_harness):
    """Stripe does not order a new subscription's event and its first invoice's. When the
    subscription's lands first it grants the period; the invoice that follows must not reset
    it again (that handed back what was spent in between, and wrote a +0 ledger row)."""
    from billing.tests.harness import checkout, spend

    checkout(api, stripe_harness, {"tier": "pro", "interval": "month"})
    queued, stripe_harness.queued = stripe_harness.queued, []
    invoice_paid = [d for d in queued if d.event["type"] == "invoice.paid"]
    stripe_harness.queued = [d for d in queued if d.event["type"] != "invoice.paid"]
    stripe_harness.deliver()
    assert CreditAccount.objects.get(user=owner).monthly_remaining == 500
    spend(api, 120)
    stripe_harness.queued = invoice_paid
    stripe_harness.deliver()
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.monthly_remaining) == ("pro", 380)
    rows = LedgerEntry.objects.filter(user=owner)
    assert not rows.filter(monthly_delta=0, purchased_delta=0).exists()
