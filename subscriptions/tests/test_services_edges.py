"""The less travelled paths of the rules: replays, races, refusals, states that change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.models import LedgerEntry
from subscriptions import services
from subscriptions.errors import IdempotencyConflict, InvalidAmount
from subscriptions.models import CreditAccount, CreditHold
from subscriptions.services import adjustments, spending
from subscriptions.tests.factories import UserFactory
from subscriptions.tests.helpers import T0, account_of, state, subscribe

pytestmark = pytest.mark.usefixtures("at_t0")


def test_a_user_without_an_account_gets_one_on_first_read(db):
    user = UserFactory.create()
    CreditAccount.objects.filter(user=user).delete()
    fresh = type(user).objects.get(pk=user.pk)
    assert services.account_get(user=fresh).tier == "free"


@pytest.mark.parametrize("credits", [0, -5])
def test_purchases_and_clawbacks_need_a_positive_amount(owner, credits):
    with pytest.raises(InvalidAmount):
        services.credits_purchase_add(user=owner, credits=credits, idempotency_key="p")
    with pytest.raises(InvalidAmount):
        services.credits_clawback(user=owner, credits=credits, idempotency_key="c")


def test_replayed_keys_return_the_first_row_everywhere(owner, staff):
    first = services.credits_purchase_add(user=owner, credits=10, idempotency_key="p")
    assert services.credits_purchase_add(user=owner, credits=99, idempotency_key="p") == first
    claw = services.credits_clawback(user=owner, credits=1, idempotency_key="c")
    assert services.credits_clawback(user=owner, credits=1, idempotency_key="c") == claw
    adjust = services.credits_adjust(
        user=owner, amount=5, reason="r", staff_user=staff, idempotency_key="a"
    )
    again = services.credits_adjust(
        user=owner, amount=5, reason="r", staff_user=staff, idempotency_key="a"
    )
    assert again == adjust
    subscribe(owner, "institutional")
    override = services.allowance_override_set(
        user=owner, allowance=9000, reason="deal", staff_user=staff, idempotency_key="o"
    )
    repeat = services.allowance_override_set(
        user=owner, allowance=9000, reason="deal", staff_user=staff, idempotency_key="o"
    )
    assert repeat == override
    assert account_of(owner).purchased_balance == 14


def test_override_refuses_bad_values(owner, staff):
    with pytest.raises(InvalidAmount):
        services.allowance_override_set(
            user=owner, allowance=-1, reason="x", staff_user=staff, idempotency_key="o"
        )
    with pytest.raises(InvalidAmount):
        services.allowance_override_set(
            user=owner, allowance=10, reason="", staff_user=staff, idempotency_key="o"
        )


def test_a_lost_race_on_the_ledger_key_answers_with_the_winners_row(owner, monkeypatch):
    winner = services.credits_purchase_add(user=owner, credits=10, idempotency_key="race")
    # The loser did not see the row before inserting: its insert meets the unique key.
    monkeypatch.setattr(adjustments, "recorded_entry", lambda key: None)
    assert services.credits_purchase_add(user=owner, credits=10, idempotency_key="race") == winner
    spent = services.credits_spend(
        user=owner, action="finviz_sentiment", quantity=1, idempotency_key="s"
    )
    monkeypatch.setattr(spending, "recorded_entry", lambda key: None)
    again = services.credits_spend(
        user=owner, action="finviz_sentiment", quantity=1, idempotency_key="s"
    )
    assert again.replayed and again.entry == spent.entry
    assert account_of(owner).remaining == 50 + 10 - 3  # the allowance pays first


def test_a_hold_retried_with_its_key_is_the_same_hold(owner):
    services.credits_purchase_add(user=owner, credits=10, idempotency_key="p")
    hold = services.credits_hold_create(
        user=owner, action="finviz_sentiment", quantity=1, idempotency_key="h"
    )
    again = services.credits_hold_create(
        user=owner, action="finviz_sentiment", quantity=1, idempotency_key="h"
    )
    assert again == hold and CreditHold.objects.count() == 1
    with pytest.raises(IdempotencyConflict):
        services.credits_hold_create(
            user=owner, action="finviz_sentiment", quantity=2, idempotency_key="h"
        )


def test_sync_replays_and_no_op_states(owner):
    first = services.subscription_sync(user=owner, state=state(), idempotency_key="e1")
    assert services.subscription_sync(user=owner, state=state(), idempotency_key="e1") == first
    # The same state again under a new key changes nothing and writes nothing.
    assert (
        services.subscription_sync(
            user=owner, state=state(observed_at=T0 + timedelta(1)), idempotency_key="e2"
        )
        is None
    )
    ended = state(status="canceled", observed_at=T0 + timedelta(2))
    assert services.subscription_sync(user=owner, state=ended, idempotency_key="e3") is not None
    assert (
        services.subscription_sync(
            user=owner,
            state=state(status="canceled", observed_at=T0 + timedelta(3)),
            idempotency_key="e4",
        )
        is None
    )


def test_an_incomplete_subscription_grants_nothing_yet(owner):
    services.subscription_sync(user=owner, state=state(status="incomplete"), idempotency_key="i")
    account = account_of(owner)
    assert (account.tier, account.subscription_status, account.remaining) == (
        "free",
        "incomplete",
        50,  # the free allowance only
    )
    assert not LedgerEntry.objects.filter(user=owner).exclude(kind="period_reset").exists()


def test_a_paid_invoice_replayed_returns_the_first_reset(owner):
    subscribe(owner)
    args = dict(
        user=owner,
        period_start=T0,
        period_end=T0 + timedelta(days=28),
        interval="month",
        idempotency_key="invoice:in_1",
    )
    first = services.allowance_period_start(**args)
    assert services.allowance_period_start(**args) == first


def test_a_paid_invoice_of_another_subscription_starts_no_period(owner):
    """A duplicate subscription's first invoice (billing/duplicates.py ends it): the account's
    period and allowance stay those of the subscription it has."""
    subscribe(owner)
    before = account_of(owner)
    assert before.stripe_subscription_id
    result = services.allowance_period_start(
        user=owner,
        period_start=T0 + timedelta(days=3),
        period_end=T0 + timedelta(days=31),
        interval="month",
        idempotency_key="invoice:in_duplicate",
        subscription_id="sub_duplicate",
    )
    after = account_of(owner)
    assert result is None
    assert (after.period_start, after.billing_period_end, after.version) == (
        before.period_start,
        before.billing_period_end,
        before.version,
    )
    assert not LedgerEntry.objects.filter(idempotency_key="invoice:in_duplicate").exists()


def test_an_unlock_bought_again_before_the_sweep_closes_the_ended_one_first(db):
    """One open unlock per component (a unique index): the ended one is closed, with its
    research_expired activity, before the new one is written."""
    from datetime import timedelta

    from django.utils import timezone

    from activities.models import Activity, ActivityType
    from subscriptions.models import ComponentUnlock
    from subscriptions.tests.factories import UserFactory

    user = UserFactory.create()
    services.account_get(user=user)
    services.credits_purchase_add(user=user, credits=100, idempotency_key=f"cs_{user.pk}")
    start = timezone.now()
    first = services.component_unlock(user=user, component="chart", now=start)
    later = start + timedelta(hours=3)  # ended; the sweep has not run
    second = services.component_unlock(user=user, component="chart", now=later)
    assert second.charged and second.unlock.pk != first.unlock.pk
    first.unlock.refresh_from_db()
    assert first.unlock.expiry_recorded
    assert (
        Activity.objects.filter(user=user, activity_type=ActivityType.RESEARCH_EXPIRED).count() == 1
    )
    assert ComponentUnlock.objects.filter(user=user, expiry_recorded=False).count() == 1
