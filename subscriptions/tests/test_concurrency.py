"""Locks proven on real PostgreSQL connections: many threads, one account.

Each thread has its own database connection (Django's connections are per thread), so these
are genuinely concurrent transactions that PostgreSQL must serialise on the account row.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from activities.models import LedgerEntry
from conftest import bearer_client
from hrvstr.tests.concurrency import run_together
from subscriptions import services
from subscriptions.models import ComponentUnlock, CreditAccount
from subscriptions.selectors import ledger_drift
from subscriptions.tests.factories import UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
]


def user_with_credits(credits: int):
    """A user whose account holds exactly ``credits`` (the free allowance topped up)."""
    user = UserFactory.create()
    top_up = credits - services.account_get(user=user).remaining
    services.credits_purchase_add(user=user, credits=top_up, idempotency_key="seed")
    return user


def test_fifty_concurrent_spends_never_overdraw_and_the_ledger_sums(settings):
    settings.RATELIMIT_ENABLE = False
    user = user_with_credits(100)

    def spend(index: int) -> int:
        client = bearer_client(user)
        response = client.post(
            "/api/credits/spend",
            {"action": "finviz_sentiment", "quantity": 1},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"req-{index}",
        )
        return response.status_code

    statuses = Counter(run_together(50, spend))
    account = CreditAccount.objects.get(user=user)
    assert statuses == {200: 33, 402: 17}
    assert account.remaining == 1
    assert ledger_drift(account=account) == {}
    assert LedgerEntry.objects.filter(user=user, kind="spend").count() == 33


def test_concurrent_retries_of_one_key_charge_once(settings):
    settings.RATELIMIT_ENABLE = False
    user = user_with_credits(100)

    def spend(index: int):
        client = bearer_client(user)
        response = client.post(
            "/api/credits/spend",
            {"action": "reddit_sentiment", "quantity": 1},
            format="json",
            HTTP_IDEMPOTENCY_KEY="the-same-key",
        )
        return response.status_code, response.json()["data"]["transactionId"]

    answers = run_together(20, spend)
    assert {status for status, _ in answers} == {200}
    assert len({transaction_id for _, transaction_id in answers}) == 1
    assert CreditAccount.objects.get(user=user).remaining == 95


def test_a_double_unlock_from_two_devices_charges_once(settings):
    settings.RATELIMIT_ENABLE = False
    user = user_with_credits(100)

    def unlock(index: int) -> bool:
        client = bearer_client(user)
        response = client.post(
            "/api/credits/unlock-component", {"component": "chart"}, format="json"
        )
        return response.json()["data"]["charged"]

    charged = run_together(8, unlock)
    assert charged.count(True) == 1
    assert ComponentUnlock.objects.filter(user=user).count() == 1
    account = CreditAccount.objects.get(user=user)
    assert account.remaining == 90
    assert ledger_drift(account=account) == {}


def test_concurrent_purchase_deliveries_add_credits_once():
    user = UserFactory.create()

    def deliver(index: int) -> int:
        entry = services.credits_purchase_add(
            user=user, credits=250, idempotency_key="checkout:cs_test_1"
        )
        return entry.pk

    assert len(set(run_together(10, deliver))) == 1
    assert CreditAccount.objects.get(user=user).purchased_balance == 250


def test_concurrent_clawback_settlements_converge_on_the_target_read_last():
    """Twenty deliveries settle one bundle's clawback at once, half reading a refund and half
    its failure: whichever reads last (under the lock) decides, and nothing is taken twice."""
    user = UserFactory.create()
    services.credits_purchase_add(user=user, credits=250, idempotency_key="bundle")
    state = {"target": 250}
    lock = threading.Lock()

    def settle(index: int):
        def target() -> int:
            with lock:  # Stripe's state flips as the deliveries are processed
                state["target"] = 250 if index % 2 else 0
                return state["target"]

        return services.credits_clawback_settle(
            user=user, source="cs_bundle", target=target, reason="r", restore_reason="rr"
        )

    run_together(20, settle)
    account = CreditAccount.objects.get(user=user)
    assert ledger_drift(account=account) == {}
    assert account.purchased_balance == 250 - state["target"]
    claimed = 0
    for entry in LedgerEntry.objects.filter(user=user, source="cs_bundle"):
        claimed += entry.details.get("requested", 0) - entry.details.get("released", 0)
    assert claimed == state["target"]
