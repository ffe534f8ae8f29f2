from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.gateway import StripeUnavailable
from subscriptions.models import CreditAccount
from subscriptions.services import component_unlock, credits_adjust

pytestmark = pytest.mark.django_db


def make_pro(user, **fields):
    now = timezone.now()
    values = dict(
        tier="pro",
        monthly_allowance=500,
        subscription_status="active",
        stripe_subscription_id="sub_123",
        stripe_customer_id=f"cus_{user.pk}",
        billing_interval="month",
        billing_period_end=now + timedelta(days=20),
        period_end=now + timedelta(days=20),
    )
    values.update(fields)
    CreditAccount.objects.filter(user=user).update(**values)


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/billing/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/billing/"


def test_a_free_account_shows_its_credits_and_no_bundle(owner_client):
    html = owner_client.get("/billing/").content.decode()
    assert "Free plan" in html
    assert "<strong>50</strong> left" in html  # the free allowance
    assert "Credit bundles come with paid plans" in html
    assert "Manage billing" not in html  # no Stripe customer yet
    assert "No invoices yet." in html


def test_a_pro_account_shows_the_meter_reset_and_the_bundle(owner, owner_client):
    make_pro(owner, monthly_used=120)
    credits_adjust(user=owner, amount=30, reason="goodwill", staff_user=None, idempotency_key="k1")
    html = owner_client.get("/billing/").content.decode()
    assert "Pro plan" in html
    assert "<strong>410</strong> left" in html
    assert '<meter id="usage-meter" min="0" max="500" value="120"' in html
    assert "Monthly credits used: 120 of 500" in html
    assert "+ 30 purchased" in html
    assert "in 20 days" in html
    assert "Buy 250 credits for $10" in html
    assert "Manage billing" in html
    assert "Cancel at period end" in html


def test_past_due_shows_the_grace_deadline(owner, owner_client):
    deadline = timezone.now() + timedelta(days=5)
    make_pro(owner, subscription_status="past_due", grace_until=deadline)
    html = owner_client.get("/billing/").content.decode()
    assert "Past due." in html
    assert f"{deadline:%-d %b %Y}" in html


def test_a_cancelled_subscription_shows_its_end_and_resume(owner, owner_client):
    make_pro(owner, cancel_at_period_end=True)
    html = owner_client.get("/billing/").content.decode()
    assert "Cancels on" in html
    assert "Resume subscription" in html
    assert "Cancel at period end" not in html


def test_active_unlocks_show_their_time_left(owner, owner_client):
    make_pro(owner)
    component_unlock(user=owner, component="reddit")
    html = owner_client.get("/billing/").content.decode()
    assert "Reddit sentiment</strong>: 1 h 59 min left" in html


def test_invoices_are_listed(owner, owner_client, monkeypatch):
    from billing import selectors

    monkeypatch.setattr(
        selectors,
        "invoices_recent",
        lambda *, user, limit: [
            {
                "id": "in_1",
                "amount": 1900,
                "currency": "usd",
                "status": "paid",
                "date": "2026-11-01T10:00:00Z",
                "description": "HRVSTR Pro",
                "downloadUrl": "https://invoice.example/in_1",
            }
        ],
    )
    html = owner_client.get("/billing/").content.decode()
    assert "HRVSTR Pro" in html and "$19" in html and "1 Nov 2026" in html
    assert 'href="https://invoice.example/in_1"' in html


def test_stripe_down_still_shows_the_page_and_says_what_is_missing(owner_client, monkeypatch):
    from billing import selectors

    def unreachable(**kwargs):
        raise StripeUnavailable()

    monkeypatch.setattr(selectors, "invoices_recent", unreachable)
    response = owner_client.get("/billing/")
    assert response.status_code == 200
    assert "Invoices cannot be shown right now" in response.content.decode()


def test_each_member_sees_only_their_own_account(owner, owner_client, other_client):
    make_pro(owner)
    assert "Pro plan" in owner_client.get("/billing/").content.decode()
    assert "Free plan" in other_client.get("/billing/").content.decode()


def test_staff_see_their_own_billing_page(staff_client):
    assert staff_client.get("/billing/").status_code == 200


def test_a_lock_timeout_is_a_busy_page_not_a_crash(owner_client, monkeypatch):
    from django.db import OperationalError

    from billing import selectors

    def locked(**kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(selectors, "billing_overview", locked)
    response = owner_client.get("/billing/")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert "busy" in response.content.decode()


def test_other_database_errors_are_not_hidden(owner_client, monkeypatch):
    from django.db import OperationalError

    from billing import selectors

    def broken(**kwargs):
        raise OperationalError("no such table")

    monkeypatch.setattr(selectors, "billing_overview", broken)
    with pytest.raises(OperationalError):
        owner_client.get("/billing/")


def test_a_free_account_can_upgrade_from_the_billing_page(owner_client):
    html = owner_client.get("/billing/").content.decode()
    assert 'action="/billing/checkout/"' in html
    assert "Upgrade to Pro" in html and "Upgrade to Institutional" in html


def test_a_subscriber_switches_plan_from_the_billing_page(owner, owner_client):
    make_pro(owner)
    html = owner_client.get("/billing/").content.decode()
    assert 'action="/billing/change-plan/"' in html
    assert "Upgrade to Elite" in html and "Upgrade to Pro" not in html
    make_pro(owner, tier="elite", billing_interval="year")
    html = owner_client.get("/billing/").content.decode()
    assert "Downgrade to Pro" in html and "$190 / year" in html
