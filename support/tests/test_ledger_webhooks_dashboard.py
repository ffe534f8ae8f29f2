from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from djstripe.models import WebhookEventTrigger

from activities.models import LedgerEntry
from billing.tests.harness import checkout_and_pay
from conftest import logged_in
from subscriptions.models import CreditAccount
from subscriptions.services import credits_adjust, credits_spend

pytestmark = pytest.mark.django_db


def grant(user, amount=50, key="g1"):
    return credits_adjust(
        user=user, amount=amount, reason="goodwill", staff_user=None, idempotency_key=key
    )


def test_the_ledger_is_read_only_even_for_superusers(admin_client, owner):
    entry = grant(owner)
    base = "/admin/activities/ledgerentry/"
    assert admin_client.get(base).status_code == 200
    page = admin_client.get(f"{base}{entry.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.post(f"{base}{entry.pk}/change/", {"reason": "x"}).status_code == 403
    assert admin_client.post(f"{base}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get(f"{base}add/").status_code == 403
    body = {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    admin_client.post(base, body)
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()


def test_ledger_rows_link_to_the_stripe_object_behind_them(
    admin_client, owner_client, owner, stripe_harness
):
    session_id = checkout_and_pay(
        owner_client, stripe_harness, {"tier": "pro", "interval": "month"}
    )
    checkout_and_pay(owner_client, stripe_harness, {"bundle": "credits_250"})
    html = admin_client.get("/admin/activities/ledgerentry/").content.decode()
    purchase = LedgerEntry.objects.get(user=owner, kind="purchase")
    assert purchase.source.startswith("cs_") and purchase.source != session_id
    assert f'href="/admin/djstripe/session/?id={purchase.source}"' in html
    assert f"https://dashboard.stripe.com/test/checkout/sessions/{purchase.source}" in html
    # The link finds dj-stripe's copy of the session.
    found = admin_client.get(f"/admin/djstripe/session/?id={purchase.source}").content.decode()
    assert "1 session" in found and purchase.source in found
    sources = set(LedgerEntry.objects.filter(user=owner).values_list("source", flat=True))
    for source in sources - {purchase.source}:
        model = {"in_": "invoice", "evt": "event", "sub": "subscription"}[source[:3]]
        assert f'href="/admin/djstripe/{model}/?id={source}"' in html
        assert admin_client.get(f"/admin/djstripe/{model}/?id={source}").status_code == 200


def test_djstripes_invoice_and_session_pages_open(admin_client, owner_client, stripe_harness):
    from djstripe.models import Invoice, Session

    checkout_and_pay(owner_client, stripe_harness, {"tier": "pro", "interval": "month"})
    for model, name in ((Invoice, "invoice"), (Session, "session")):
        obj = model.objects.first()
        assert admin_client.get(f"/admin/djstripe/{name}/").status_code == 200
        assert admin_client.get(f"/admin/djstripe/{name}/?q={obj.id}").status_code == 200
        assert admin_client.get(f"/admin/djstripe/{name}/{obj.pk}/change/").status_code == 200


def test_source_links_know_events_invoices_and_plain_sources(admin_client):
    from support.admin import source_links

    assert 'href="/admin/djstripe/event/?id=evt_1"' in source_links("evt_1")
    assert "dashboard.stripe.com/invoices/in_1" in source_links("in_1", livemode=True)
    assert source_links("staff-resync:3") == "staff-resync:3"


def test_the_support_group_can_read_the_ledger_but_not_change_it(agent_client, owner):
    entry = grant(owner)
    assert agent_client.get("/admin/activities/ledgerentry/").status_code == 200
    assert agent_client.post(f"/admin/activities/ledgerentry/{entry.pk}/delete/").status_code == 403


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
    grant(owner, 30)
    credits_spend(user=owner, action="sec_filing", quantity=3, idempotency_key="s")
    response = admin_client.get("/admin/dashboard/")
    assert response.status_code == 200
    context = response.context
    # $19 a month + $490 a year / 12; the past-due account brings nothing in.
    assert context["mrr"]["total_cents"] == 1900 + 49000 // 12
    assert {row["tier"].key: row["count"] for row in context["tiers"]} == {
        "free": 0,
        "pro": 1,
        "elite": 2,
        "institutional": 0,
    }
    today = context["daily"][-1]
    assert (today.granted, today.spent) == (30, 9)
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


def test_the_dashboard_is_for_staff_only(client, owner_client, agent_client):
    assert client.get("/admin/dashboard/")["Location"].startswith("/admin/login/")
    assert owner_client.get("/admin/dashboard/")["Location"].startswith("/admin/login/")
    assert agent_client.get("/admin/dashboard/").status_code == 200


def test_the_admin_index_links_the_dashboard(admin_client):
    assert 'href="/admin/dashboard/"' in admin_client.get("/admin/").content.decode()


def test_the_support_group_exists_with_its_permissions(support_agent):
    assert support_agent.has_perm("support.adjust_credits")
    assert support_agent.has_perm("auth.view_user")
    assert not support_agent.has_perm("auth.delete_user")
    assert not support_agent.has_perm("auth.change_user")
    assert not support_agent.has_perm("djstripe.view_apikey")
    assert not support_agent.has_perm("djstripe.change_apikey")


def test_an_unpriced_subscription_is_counted_apart(admin_client, owner):
    CreditAccount.objects.filter(user=owner).update(
        tier="pro",
        subscription_status="active",
        stripe_subscription_id="sub_1",
        stripe_price_lookup_key="legacy_plan",
    )
    mrr = admin_client.get("/admin/dashboard/").context["mrr"]
    assert (mrr["total_cents"], mrr["unpriced"]) == (0, 1)


def test_a_non_staff_member_gets_no_admin(owner):
    assert logged_in(owner).get("/admin/auth/user/").status_code == 302


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
