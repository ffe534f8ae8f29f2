"""Races between a customer's action and a webhook still on its way (found by bench/soak.py)."""

from __future__ import annotations

import pytest
import stripe

from billing.tests.harness import SECRET_KEY, subscribe_pro
from subscriptions.models import CreditAccount


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("change-plan", {"tier": "elite", "interval": "month"}),
        ("cancel-subscription", {"immediate": False}),
        ("resume-subscription", {}),
    ],
)
def test_a_plan_action_on_a_subscription_stripe_already_ended_is_400_not_502(
    api, owner, stripe_harness, path, body
):
    subscribe_pro(api, stripe_harness)
    account = CreditAccount.objects.get(user=owner)
    stripe.Subscription.cancel(account.stripe_subscription_id, api_key=SECRET_KEY)
    # The customer.subscription.deleted webhook has not arrived: our row still says active.
    assert CreditAccount.objects.get(user=owner).subscription_status == "active"
    response = api.post(f"/api/billing/{path}", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "no_subscription"
    stripe_harness.deliver()
    assert CreditAccount.objects.get(user=owner).tier == "free"
