"""harness.PlayedOnce: a class's tests share a life played once, yet none sees another's changes.

The first test changes both sides, our database and the offline Stripe; the second, run after
it on the same worker (the class is one xdist group), must find the life as it was played.
"""

from __future__ import annotations

import pytest
import stripe

from activities.models import LedgerEntry
from billing.tests.harness import SECRET_KEY, PlayedOnce
from subscriptions.models import CreditAccount
from subscriptions.services import credits_purchase_add, credits_spend

pytestmark = pytest.mark.django_db


def credits_and_a_stripe_customer(owner, harness) -> None:
    credits_purchase_add(user=owner, credits=100, idempotency_key="life")
    stripe.Customer.create(email=owner.email, api_key=SECRET_KEY)


def the_life_as_played(owner, emulator) -> tuple:
    account = CreditAccount.objects.get(user=owner)
    customers = [c["email"] for c in emulator.store.all("customer")]
    return account.purchased_balance, LedgerEntry.objects.filter(user=owner).count(), customers


@pytest.mark.xdist_group("played_once_isolation")
class TestEachTestStartsFromTheLife(PlayedOnce):
    life = staticmethod(credits_and_a_stripe_customer)
    played: tuple | None = None  # what the first test found, for the second

    def test_a_test_changes_the_database_and_stripe(self, owner, stripe_harness):
        played = the_life_as_played(owner, stripe_harness.emulator)
        assert played[0] >= 100 and played[2] == [owner.email]
        credits_spend(user=owner, action="ai_ticker_analysis", quantity=1, idempotency_key="x")
        [customer] = stripe_harness.emulator.store.all("customer")
        stripe.Customer.delete(customer["id"], api_key=SECRET_KEY)
        assert the_life_as_played(owner, stripe_harness.emulator) != played
        type(self).played = played

    def test_the_next_starts_from_the_life_again(self, owner, stripe_harness):
        expected = type(self).played
        if expected is None:
            pytest.skip("runs after the test above (run alone, there is nothing to compare)")
        assert the_life_as_played(owner, stripe_harness.emulator) == expected
