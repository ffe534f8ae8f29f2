"""Helpers for the subscriptions tests: a fixed clock, account state, admin actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from subscriptions import services
from subscriptions.models import CreditAccount
from subscriptions.selectors import ledger_drift

T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def account_of(user) -> CreditAccount:
    account = CreditAccount.objects.get(user=user)
    assert ledger_drift(account=account) == {}, "the ledger must sum to the account"
    return account


def state(**overrides) -> services.SubscriptionState:
    values: dict[str, Any] = dict(
        subscription_id="sub_1",
        status="active",
        tier="pro",
        price_lookup_key="pro_monthly",
        interval="month",
        period_start=T0,
        period_end=T0 + timedelta(days=28),
        cancel_at_period_end=False,
        observed_at=T0,
    )
    values.update(overrides)
    return services.SubscriptionState(**values)


def subscribe(user, tier="pro", **overrides):
    services.subscription_sync(
        user=user, state=state(tier=tier, **overrides), idempotency_key=f"sync:{tier}:{overrides}"
    )
    return account_of(user)


CHANGELIST = "/admin/auth/user/"


def adjust(client, user, **data):
    """The two steps of the action: the intermediate page, then the form with a reason."""
    page = client.post(CHANGELIST, {"action": "adjust_credits", "_selected_action": [user.pk]})
    assert page.status_code == 200
    token = page.context["form"]["token"].value()
    body = {"action": "adjust_credits", "_selected_action": [user.pk], "apply": "1", "token": token}
    return client.post(CHANGELIST, body | data), token
