"""Stripe in the admin: replaying failed webhook deliveries, dj-stripe's repaired invoice and
session pages, and the support staff's billing dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from djstripe.models import WebhookEventTrigger

from billing.tests.harness import checkout_and_pay
from subscriptions.catalogue import TIERS
from subscriptions.models import CreditAccount
from subscriptions.services import credits_adjust, credits_spend

pytestmark = pytest.mark.django_db


def test_djstripes_invoice_and_session_pages_open(admin_client, owner_client, stripe_harness):
    from djstripe.models import Invoice, Session

    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro", "interval": "month"})
    for model, name in ((Invoice, "invoice"), (Session, "session")):
        obj = model.objects.first()
        assert admin_client.get(f"/admin/djstripe/{name}/").status_code == 200
        assert admin_client.get(f"/admin/djstripe/{name}/?q={obj.id}").status_code == 200
        assert admin_client.get(f"/admin/djstripe/{name}/{obj.pk}/change/").status_code == 200


def fail_a_delivery(owner_client, stripe_harness, monkeypatch):
    from billing import sync

    response = owner_client.post("/billing/checkout/", {"tier": "pro", "interval": "month"})
    stripe_harness.deliver()
    stripe_harness.emulator.complete_checkout(response["Location"].rsplit("/", 1)[-1])
    real_apply = sync.subscription_apply
    monkeypatch.setattr(sync, "subscription_apply", lambda *a, **k: 1 / 0)
    batch, stripe_harness.queued = stripe_harness.queued, []
    for delivery in batch:
        stripe_harness.post(delivery)
    monkeypatch.setattr(sync, "subscription_apply", real_apply)
    failed = list(WebhookEventTrigger.objects.filter(valid=True, processed=False))
    assert failed
    return failed


def test_staff_replay_a_failed_webhook_with_a_reason(
    admin_client, owner, owner_client, stripe_harness, monkeypatch
):
    failed = fail_a_delivery(owner_client, stripe_harness, monkeypatch)
    dashboard = admin_client.get("/admin/dashboard/").content.decode()
    assert f"Failed webhook events ({len(failed)})" in dashboard
    base = "/admin/djstripe/webhookeventtrigger/"
    ids = [t.pk for t in failed]
    page = admin_client.post(base, {"action": "replay", "_selected_action": ids})
    assert "Replay failed webhook deliveries" in page.content.decode()
    token = page.context["form"]["token"].value()
    no_reason = admin_client.post(
        base, {"action": "replay", "_selected_action": ids, "apply": "1", "token": token}
    )
    assert no_reason.status_code == 200
    assert CreditAccount.objects.get(user=owner).tier == "free"
    response = admin_client.post(
        base,
        {
            "action": "replay",
            "_selected_action": ids,
            "apply": "1",
            "token": token,
            "reason": "fixed the handler",
        },
        follow=True,
    )
    assert "replayed" in response.content.decode()
    assert CreditAccount.objects.get(user=owner).tier == "pro"
    assert "Failed webhook events (0)" in admin_client.get("/admin/dashboard/").content.decode()


def test_the_support_group_can_replay_webhooks(
    agent_client, owner, owner_client, stripe_harness, monkeypatch
):
    failed = fail_a_delivery(owner_client, stripe_harness, monkeypatch)
    base = "/admin/djstripe/webhookeventtrigger/"
    ids = [t.pk for t in failed]
    page = agent_client.post(base, {"action": "replay", "_selected_action": ids})
    token = page.context["form"]["token"].value()
    body = {"action": "replay", "_selected_action": ids, "apply": "1", "token": token}
    agent_client.post(base, body | {"reason": "ticket 7"})
    assert CreditAccount.objects.get(user=owner).tier == "pro"


def test_the_dashboard_counts_tiers_mrr_credits_and_grace(admin_client, owner, other_user, staff):
    now = timezone.now()
    paying = dict(subscription_status="active", stripe_subscription_id="sub_1")
    CreditAccount.objects.filter(user=owner).update(
        tier="pro", monthly_allowance=500, stripe_price_lookup_key="pro_monthly", **paying
    )
    CreditAccount.objects.filter(user=staff).update(
        tier="elite", monthly_allowance=2000, stripe_price_lookup_key="elite_yearly", **paying
    )
    CreditAccount.objects.filter(user=other_user).update(
        tier="elite",
        monthly_allowance=2000,
        subscription_status="past_due",
        stripe_subscription_id="sub_2",
        stripe_price_lookup_key="elite_monthly",
        grace_until=now + timedelta(days=4),
    )
    credits_adjust(user=owner, amount=30, reason="goodwill", staff_user=None, idempotency_key="g1")
    credits_spend(user=owner, action="finviz_sentiment", quantity=3, idempotency_key="s")
    response = admin_client.get("/admin/dashboard/")
    assert response.status_code == 200
    context = response.context
    # $19 a month + $490 a year / 12; the past-due account brings nothing in.
    assert context["mrr"]["total_cents"] == 1900 + 49000 // 12
    counts = {row["tier"].key: row["count"] for row in context["tiers"]}
    assert counts == dict.fromkeys(TIERS, 0) | {"pro": 1, "elite": 2}  # every tier, in order
    today = context["daily"][-1]
    assert (today.granted, today.spent) == (30 + 3 * 50, 9)  # + three free opening allowances
    html = response.content.decode()
    assert "$59.83" in html
    assert "Accounts in grace period (1)" in html and "other@example.com" in html


def test_an_ended_grace_period_is_not_listed(admin_client, owner):
    CreditAccount.objects.filter(user=owner).update(
        tier="pro",
        subscription_status="past_due",
        stripe_subscription_id="sub_1",
        grace_until=timezone.now() - timedelta(minutes=1),
    )
    assert admin_client.get("/admin/dashboard/").context["grace"] == []


def test_an_unpriced_subscription_is_counted_apart(admin_client, owner):
    CreditAccount.objects.filter(user=owner).update(
        tier="pro",
        subscription_status="active",
        stripe_subscription_id="sub_1",
        stripe_price_lookup_key="legacy_plan",
    )
    mrr = admin_client.get("/admin/dashboard/").context["mrr"]
    assert (mrr["total_cents"], mrr["unpriced"]) == (0, 1)


def test_the_dashboard_is_for_staff_only(client, owner_client, agent_client):
    assert client.get("/admin/dashboard/")["Location"].startswith("/admin/login/")
    assert owner_client.get("/admin/dashboard/")["Location"].startswith("/admin/login/")
    assert agent_client.get("/admin/dashboard/").status_code == 200


def test_the_admin_index_links_the_dashboard(admin_client):
    assert 'href="/admin/dashboard/"' in admin_client.get("/admin/").content.decode()
