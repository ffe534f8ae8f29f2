"""Catalogue sync, reconciliation and start-up checks."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from billing.catalogue_sync import catalogue_sync
from billing.checks import stripe_keys_check
from billing.tests.harness import subscribe_pro
from subscriptions import catalogue
from subscriptions.models import CreditAccount


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_catalogue_sync_creates_every_price_once(stripe_harness):
    again = catalogue_sync()
    assert {price.lookup_key for price in again} == set(catalogue.PRICES_BY_LOOKUP_KEY)
    assert not any(price.created for price in again)
    prices = stripe_harness.emulator.store.all("price")
    assert len(prices) == len(catalogue.PRICES_BY_LOOKUP_KEY)
    by_key = {price["lookup_key"]: price for price in prices}
    assert by_key["pro_monthly"]["unit_amount"] == 1900
    assert by_key["elite_yearly"]["recurring"]["interval"] == "year"
    assert by_key["credits_250"]["recurring"] is None


def test_the_sync_command_lists_what_exists(stripe_harness):
    output = run("stripe_sync_catalogue")
    assert "exists  pro_monthly" in output


def test_reconcile_reports_and_repairs_drift(api, owner, stripe_harness):
    subscribe_pro(api, stripe_harness)
    assert "drifted: 0" in run("reconcile_billing")
    # Simulate a lost webhook: our row says free while Stripe has an active pro subscription.
    CreditAccount.objects.filter(user=owner).update(tier="free", subscription_status="canceled")
    report = run("reconcile_billing")
    assert "DRIFT owner@example.com: tier ours='free' stripe='pro'" in report
    assert "drifted: 1; fixed: 0" in report
    assert "fixed: 1" in run("reconcile_billing", "--fix")
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.subscription_status) == ("pro", "active")
    assert "drifted: 0" in run("reconcile_billing")


def test_reconcile_drops_a_tier_stripe_no_longer_has(api, owner, stripe_harness):
    subscribe_pro(api, stripe_harness)
    import stripe

    account = CreditAccount.objects.get(user=owner)
    stripe.Subscription.cancel(
        account.stripe_subscription_id, api_key="sk_test_hrvstrTests0123456789abcdef"
    )
    stripe_harness.queued.clear()  # the webhook is lost
    assert "fixed: 1" in run("reconcile_billing", "--fix")
    assert CreditAccount.objects.get(user=owner).tier == "free"


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"STRIPE_LIVE_MODE": True, "STRIPE_LIVE_SECRET_KEY": "sk_test_x"}, "billing.E001"),
        (
            {"STRIPE_LIVE_MODE": True, "STRIPE_LIVE_SECRET_KEY": "sk_live_x", "DEBUG": True},
            "billing.E002",
        ),
        ({"STRIPE_TEST_SECRET_KEY": "sk_live_oops"}, "billing.E003"),
        (
            {
                "STRIPE_LIVE_MODE": True,
                "STRIPE_LIVE_SECRET_KEY": "sk_live_x",
                "STRIPE_LIVE_WEBHOOK_SECRET": "whsec_same",
                "STRIPE_TEST_WEBHOOK_SECRET": "whsec_same",
            },
            "billing.E004",
        ),
    ],
)
def test_start_up_checks_keep_test_and_live_keys_apart(settings, overrides, error):
    settings.STRIPE_LIVE_WEBHOOK_SECRET = "whsec_live"
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert error in {message.id for message in stripe_keys_check()}


def test_start_up_checks_pass_with_test_keys(settings):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_fine"
    assert stripe_keys_check() == []


def test_a_scheduled_switch_of_interval_alone_is_no_drift(owner, owner_client, stripe_harness):
    """Yearly to monthly on the same plan is scheduled for the year's end: the plan does not
    change, so the page announces nothing and reconcile must not call that drift (the soak
    found it did: pending_tier '' vs 'institutional')."""
    from billing.tests.harness import checkout_and_pay

    checkout_and_pay(owner_client, stripe_harness, {"tier": "institutional", "interval": "year"})
    response = owner_client.post(
        "/billing/change-plan/", {"tier": "institutional", "interval": "month"}
    )
    assert response.status_code == 302
    stripe_harness.deliver()
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.billing_interval, account.pending_tier) == (
        "institutional",
        "year",
        "",
    )
    assert (
        stripe_harness.emulator.store.get(
            stripe_harness.emulator.store.get(account.stripe_subscription_id)["schedule"]
        )["status"]
        == "active"
    )
    assert "drifted: 0" in run("reconcile_billing")
