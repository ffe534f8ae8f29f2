from __future__ import annotations

import pytest

from hrvstr.templatetags.money import cents
from subscriptions import catalogue
from subscriptions.models import CreditAccount

pytestmark = pytest.mark.django_db


def test_it_shows_the_four_tiers_with_prices_and_allowances_from_the_catalogue(client):
    response = client.get("/pricing/")
    assert response.status_code == 200
    html = response.content.decode()
    for tier in catalogue.TIERS.values():
        assert f'id="plan-{tier.key}">{tier.name}</h2>' in html
        assert f"<strong>{tier.monthly_credits:,}</strong> credits a month" in html
        if tier.is_paid:
            assert cents(tier.price_monthly_cents) in html
            assert cents(tier.price_yearly_cents) in html
    assert "250 credits for $10" in html


def test_visitors_are_asked_to_sign_up_before_choosing(client):
    html = client.get("/pricing/").content.decode()
    assert "Sign up to choose Pro" in html
    assert "billing/checkout" not in html


def test_a_free_member_sees_free_marked_and_checkout_buttons(owner_client):
    html = owner_client.get("/pricing/").content.decode()
    assert html.count("Current plan") == 1
    assert 'class="plan card current" aria-labelledby="plan-free"' in html
    assert 'action="/billing/checkout/"' in html
    assert "Choose Elite monthly" in html


def test_a_subscriber_changes_plan_instead_of_a_second_checkout(owner, owner_client):
    CreditAccount.objects.filter(user=owner).update(
        tier="pro",
        subscription_status="active",
        stripe_subscription_id="sub_123",
        billing_interval="month",
    )
    html = owner_client.get("/pricing/").content.decode()
    assert 'class="plan card current" aria-labelledby="plan-pro"' in html
    assert "Current plan (monthly)" in html
    assert "Monthly: your plan" in html  # the current price cannot be bought again
    assert "Switch to Elite monthly" in html
    assert 'action="/billing/checkout/"' not in html
    assert "Downgrade: cancel your subscription" in html


def test_pricing_renders_for_staff_too(staff_client):
    assert staff_client.get("/pricing/").status_code == 200
