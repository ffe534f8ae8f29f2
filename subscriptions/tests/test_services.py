"""Unit tests of the credit rules, through the services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activities.models import Activity, ActivityType, LedgerEntry
from subscriptions import catalogue, services
from subscriptions.errors import (
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidAmount,
    TierRequired,
    UnknownAction,
    UnknownComponent,
)
from subscriptions.models import CreditAccount, HoldStatus
from subscriptions.tests.factories import UserFactory, allowance_spent
from subscriptions.tests.helpers import T0, account_of, state, subscribe

pytestmark = pytest.mark.usefixtures("at_t0")


@pytest.fixture
def pro(db):
    user = UserFactory.create()
    subscribe(user)
    return user


def spend(user, quantity=1, action="ai_ticker_analysis", key=None):
    return services.credits_spend(
        user=user, action=action, quantity=quantity, idempotency_key=key or f"k{quantity}-{id(key)}"
    )


def test_new_account_is_free_with_the_free_allowance(owner):
    account = account_of(owner)
    assert (account.tier, account.remaining, account.monthly_allowance) == ("free", 50, 50)
    opening = LedgerEntry.objects.get(user=owner)
    assert (opening.kind, opening.monthly_delta, opening.actor) == ("period_reset", 50, "system")


def test_subscription_grants_the_tier_allowance(pro):
    account = account_of(pro)
    assert (account.tier, account.monthly_allowance, account.remaining) == ("pro", 500, 500)
    assert account.period_end == T0 + timedelta(days=28)


def test_spend_takes_the_monthly_allowance_before_purchased_credits(pro):
    services.credits_purchase_add(user=pro, credits=250, idempotency_key="cs_1")
    services.credits_spend(user=pro, action="reddit_sentiment", quantity=99, idempotency_key="a")
    account = account_of(pro)
    assert (account.monthly_used, account.purchased_balance) == (495, 250)
    services.credits_spend(user=pro, action="yahoo_sentiment", quantity=5, idempotency_key="b")
    account = account_of(pro)
    assert (account.monthly_used, account.purchased_balance, account.remaining) == (500, 245, 245)


def test_spend_rejects_insufficient_balance_and_changes_nothing(pro):
    with pytest.raises(InsufficientCredits) as excinfo:
        services.credits_spend(
            user=pro, action="reddit_sentiment", quantity=101, idempotency_key="x"
        )
    assert excinfo.value.extra == {"required": 505, "remaining": 500}
    assert account_of(pro).remaining == 500
    assert not LedgerEntry.objects.filter(kind="spend").exists()


def test_spend_with_the_same_key_charges_once_and_answers_the_same(pro):
    first = services.credits_spend(
        user=pro, action="finviz_sentiment", quantity=2, idempotency_key="k"
    )
    again = services.credits_spend(
        user=pro, action="finviz_sentiment", quantity=2, idempotency_key="k"
    )
    assert again.replayed and not first.replayed
    assert again.entry.pk == first.entry.pk
    assert account_of(pro).remaining == 494


def test_spend_key_reused_for_another_request_is_a_conflict(pro):
    services.credits_spend(user=pro, action="finviz_sentiment", quantity=2, idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        services.credits_spend(user=pro, action="finviz_sentiment", quantity=3, idempotency_key="k")


def test_spend_keys_of_different_users_do_not_collide(pro, owner):
    services.credits_purchase_add(user=owner, credits=10, idempotency_key="cs_owner")
    services.credits_spend(user=pro, action="finviz_sentiment", quantity=1, idempotency_key="same")
    result = services.credits_spend(
        user=owner, action="finviz_sentiment", quantity=1, idempotency_key="same"
    )
    assert not result.replayed
    assert account_of(owner).remaining == 50 + 7


@pytest.mark.parametrize("quantity", [0, -1, 1001])
def test_spend_rejects_quantities_out_of_range(pro, quantity):
    with pytest.raises(InvalidAmount):
        services.credits_spend(
            user=pro, action="finviz_sentiment", quantity=quantity, idempotency_key="q"
        )


def test_spend_rejects_unknown_actions(pro):
    with pytest.raises(UnknownAction):
        services.credits_spend(user=pro, action="free_money", quantity=1, idempotency_key="u")


def test_purchase_is_added_once_per_key(owner):
    for _ in range(3):
        services.credits_purchase_add(user=owner, credits=250, idempotency_key="cs_same")
    assert account_of(owner).purchased_balance == 250
    assert Activity.objects.filter(activity_type=ActivityType.CREDITS_PURCHASED).count() == 1


def test_clawback_takes_only_unspent_credits_and_records_the_shortfall(owner):
    allowance_spent(owner)
    services.credits_purchase_add(user=owner, credits=250, idempotency_key="cs_1")
    services.credits_spend(user=owner, action="reddit_sentiment", quantity=40, idempotency_key="s")
    entry = services.credits_clawback(user=owner, credits=250, idempotency_key="refund:re_1")
    assert entry.details == {"requested": 250, "taken": 50, "shortfall": 200}
    assert account_of(owner).purchased_balance == 0
    services.credits_clawback(user=owner, credits=250, idempotency_key="refund:re_1")
    assert LedgerEntry.objects.filter(kind="clawback").count() == 1


def test_staff_adjustment_grants_and_removes_with_a_reason(owner, staff):
    services.credits_adjust(
        user=owner, amount=100, reason="goodwill", staff_user=staff, idempotency_key="adj1"
    )
    services.credits_adjust(
        user=owner, amount=-30, reason="mistake", staff_user=staff, idempotency_key="adj2"
    )
    entry = LedgerEntry.objects.get(idempotency_key="adj2")
    assert (entry.actor, entry.actor_user, entry.reason) == ("staff", staff, "mistake")
    assert account_of(owner).purchased_balance == 70


def test_staff_adjustment_cannot_remove_more_than_the_account_holds(owner, staff):
    allowance_spent(owner)
    with pytest.raises(InsufficientCredits):
        services.credits_adjust(
            user=owner, amount=-1, reason="x", staff_user=staff, idempotency_key="adj"
        )
    with pytest.raises(InvalidAmount):
        services.credits_adjust(
            user=owner, amount=5, reason=" ", staff_user=staff, idempotency_key="a"
        )


def test_upgrade_raises_the_allowance_now_and_keeps_usage_counted(pro):
    spend(pro, quantity=100)
    account = subscribe(
        pro, "elite", price_lookup_key="elite_monthly", observed_at=T0 + timedelta(1)
    )
    assert (account.tier, account.monthly_allowance, account.monthly_used) == ("elite", 2000, 100)
    assert account.remaining == 1900


def test_a_scheduled_downgrade_shows_as_pending_and_waits_for_stripe(pro):
    # Stripe keeps billing Elite until the period end (a subscription schedule will switch).
    account = subscribe(pro, "elite", observed_at=T0 + timedelta(days=1))
    account = subscribe(pro, "elite", observed_at=T0 + timedelta(days=2), scheduled_tier="pro")
    assert (account.tier, account.pending_tier, account.monthly_allowance) == ("elite", "pro", 2000)
    # A renewal before Stripe switches does not apply it on its own...
    services.allowance_period_start(
        user=pro,
        period_start=T0 + timedelta(days=28),
        period_end=T0 + timedelta(days=56),
        interval="month",
        idempotency_key="invoice:in_1b",
    )
    assert account_of(pro).tier == "elite"
    # ...Stripe switching the price does.
    account = subscribe(pro, "pro", observed_at=T0 + timedelta(days=28))
    assert (account.tier, account.pending_tier) == ("pro", "")


def test_a_downgrade_takes_effect_when_stripe_switches_the_price(pro):
    spend(pro, quantity=300)
    account = subscribe(pro, "elite", observed_at=T0 + timedelta(days=1))
    spend(pro, quantity=1000, key="big")
    account = subscribe(pro, "pro", observed_at=T0 + timedelta(days=2))
    # Usage already counted stays counted: nothing of the month is left, none is forgiven.
    assert (account.tier, account.monthly_allowance, account.monthly_used) == ("pro", 1300, 1300)
    assert account.monthly_remaining == 0
    account = subscribe(pro, "elite", observed_at=T0 + timedelta(days=3))
    assert (account.monthly_allowance, account.monthly_remaining) == (2000, 700)
    account = subscribe(pro, "pro", observed_at=T0 + timedelta(days=4))
    services.allowance_period_start(
        user=pro,
        period_start=T0 + timedelta(days=28),
        period_end=T0 + timedelta(days=56),
        interval="month",
        idempotency_key="invoice:in_2",
    )
    account = account_of(pro)
    assert (account.tier, account.pending_tier, account.monthly_allowance) == ("pro", "", 500)


def test_renewal_resets_the_allowance_once_per_invoice(pro):
    spend(pro, quantity=300)
    for _ in range(2):
        services.allowance_period_start(
            user=pro,
            period_start=T0 + timedelta(days=28),
            period_end=T0 + timedelta(days=56),
            interval="month",
            idempotency_key="invoice:in_2",
        )
    account = account_of(pro)
    assert (account.monthly_used, account.remaining) == (0, 500)
    assert (
        LedgerEntry.objects.filter(kind="period_reset", idempotency_key__contains="in_2").count()
        == 1
    )


def test_a_late_invoice_for_an_older_period_changes_nothing(pro):
    services.allowance_period_start(
        user=pro,
        period_start=T0 + timedelta(days=28),
        period_end=T0 + timedelta(days=56),
        interval="month",
        idempotency_key="invoice:in_2",
    )
    spend(pro, quantity=10)
    result = services.allowance_period_start(
        user=pro,
        period_start=T0,
        period_end=T0 + timedelta(days=28),
        interval="month",
        idempotency_key="invoice:in_1",
    )
    assert result is None
    assert account_of(pro).monthly_used == 10


def test_past_due_keeps_the_tier_for_the_grace_period_then_falls_to_free(pro):
    services.credits_purchase_add(user=pro, credits=250, idempotency_key="cs_1")
    failed_at = T0 + timedelta(days=28)
    account = subscribe(pro, status="past_due", observed_at=failed_at)
    assert account.tier == "pro"
    # The deadline is the grace rule's (test_predicates.py pins it); the service keeps it.
    assert account.grace_until == CreditAccount().grace_deadline(past_due_at=failed_at)
    with time_machine.travel(account.grace_until - timedelta(seconds=1)):
        assert services.account_get(user=pro).tier == "pro"
    with time_machine.travel(account.grace_until):
        account = services.account_get(user=CreditAccount.objects.get(user=pro).user)
    assert (account.tier, account.remaining, account.purchased_balance) == ("free", 50 + 250, 250)
    # Stripe still says past_due later on: the grace does not start again.
    subscribe(pro, status="past_due", observed_at=T0 + timedelta(days=37))
    assert account_of(pro).tier == "free"


@pytest.mark.parametrize("status", ["canceled", "unpaid", "incomplete_expired"])
def test_ended_subscription_falls_to_free_and_purchased_credits_stay(pro, status):
    services.credits_purchase_add(user=pro, credits=250, idempotency_key="cs_1")
    account = subscribe(pro, status=status, observed_at=T0 + timedelta(days=3))
    assert (account.tier, account.monthly_allowance, account.purchased_balance) == ("free", 50, 250)


def test_unknown_price_never_downgrades_a_paying_customer(pro):
    account = subscribe(pro, tier=None, price_lookup_key="", observed_at=T0 + timedelta(days=1))
    assert account.tier == "pro"
    assert account.billing_problem.startswith("Unknown Stripe price")


def test_an_older_subscription_state_is_ignored(pro):
    subscribe(pro, "elite", observed_at=T0 + timedelta(days=5))
    account = subscribe(pro, status="canceled", observed_at=T0 + timedelta(days=1))
    assert account.tier == "elite"


def test_a_replaced_subscription_ending_leaves_the_current_one_alone(pro):
    subscribe(pro, "elite", subscription_id="sub_2", observed_at=T0 + timedelta(days=1))
    account = subscribe(pro, status="canceled", observed_at=T0 + timedelta(days=2))
    assert (account.tier, account.stripe_subscription_id) == ("elite", "sub_2")


def test_free_accounts_renew_monthly_from_sign_up_when_read(db):
    with time_machine.travel(T0, tick=False):
        user = UserFactory.create()
    with time_machine.travel(T0 + timedelta(days=29), tick=False):
        account = services.account_get(user=user)
    assert account.period_start == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert account.period_end == datetime(2026, 3, 31, 12, tzinfo=UTC)


def test_yearly_plans_get_a_monthly_allowance_each_month(db):
    user = UserFactory.create()
    subscribe(
        user, interval="year", period_end=T0 + timedelta(days=365), price_lookup_key="pro_yearly"
    )
    spend(user, quantity=500)
    with time_machine.travel(T0 + timedelta(days=40), tick=False):
        assert services.allowances_grant_due() == 1
        assert services.allowances_grant_due() == 0
    account = account_of(user)
    assert (account.monthly_used, account.remaining) == (0, 500)
    assert account.period_start == datetime(2026, 2, 28, 12, tzinfo=UTC)


def test_monthly_paid_plans_wait_for_the_paid_invoice(pro):
    with time_machine.travel(T0 + timedelta(days=29), tick=False):
        assert services.allowances_grant_due() == 0
    assert account_of(pro).period_end == T0 + timedelta(days=28)


def test_custom_institutional_allowance(db, staff):
    user = UserFactory.create()
    subscribe(user, "institutional")
    services.allowance_override_set(
        user=user, allowance=12000, reason="contract", staff_user=staff, idempotency_key="o1"
    )
    assert account_of(user).monthly_allowance == 12000


def test_hold_counts_as_spent_until_released(pro):
    hold = services.credits_hold_create(
        user=pro, action="reddit_sentiment", quantity=10, idempotency_key="h"
    )
    assert account_of(pro).remaining == 450
    services.credits_hold_release(user=pro, hold_id=hold.pk)
    services.credits_hold_release(user=pro, hold_id=hold.pk)  # a retry answers the same
    assert account_of(pro).remaining == 500
    with pytest.raises(HoldNotOpen):
        services.credits_hold_capture(user=pro, hold_id=hold.pk)


def test_captured_hold_stays_spent(pro):
    hold = services.credits_hold_create(
        user=pro, action="finviz_sentiment", quantity=1, idempotency_key="h"
    )
    services.credits_hold_capture(user=pro, hold_id=hold.pk)
    assert account_of(pro).remaining == 497


def test_open_holds_expire_by_themselves_and_return_their_credits(pro):
    with time_machine.travel(T0, tick=False):
        hold = services.credits_hold_create(
            user=pro, action="finviz_sentiment", quantity=5, idempotency_key="h"
        )
    with time_machine.travel(T0 + timedelta(minutes=16), tick=False):
        account = services.account_get(user=type(pro).objects.get(pk=pro.pk))
    hold.refresh_from_db()
    assert hold.status == HoldStatus.EXPIRED
    assert account.remaining == 500
    assert account_of(pro).next_hold_expiry_at is None


def test_unlock_charges_once_while_active(pro):
    first = services.component_unlock(user=pro, component="chart")
    second = services.component_unlock(user=pro, component="chart")
    assert first.charged and not second.charged
    assert second.unlock.pk == first.unlock.pk
    assert account_of(pro).remaining == 490
    assert first.unlock.expires_at - first.unlock.unlocked_at == timedelta(hours=2)


def test_unlock_needs_the_required_tier(owner):
    services.credits_purchase_add(user=owner, credits=100, idempotency_key="cs")
    with pytest.raises(TierRequired) as excinfo:
        services.component_unlock(user=owner, component="reddit")
    assert excinfo.value.extra["requiredTiers"] == [*catalogue.tiers_from("pro")]
    result = services.component_unlock(user=owner, component="chart")
    assert result.unlock.expires_at - result.unlock.unlocked_at == timedelta(minutes=30)


def test_unlock_rejects_unknown_components(pro):
    with pytest.raises(UnknownComponent):
        services.component_unlock(user=pro, component="everything")


def test_expired_unlock_leaves_one_research_expired_activity(pro):
    with time_machine.travel(T0, tick=False):
        services.component_unlock(user=pro, component="scores")
    with time_machine.travel(T0 + timedelta(hours=3), tick=False):
        assert services.unlocks_record_expired() == 1
        assert services.unlocks_record_expired() == 0
        again = services.component_unlock(user=pro, component="scores")
    assert again.charged
    assert Activity.objects.filter(activity_type=ActivityType.RESEARCH_EXPIRED).count() == 1


TIER_SEQUENCE = st.lists(st.sampled_from(["pro", "elite", "institutional", "pro"]), max_size=8)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tiers=TIER_SEQUENCE, spends=st.lists(st.integers(1, 400), max_size=8))
def test_no_plan_change_sequence_yields_more_than_the_highest_allowance(db, tiers, spends):
    user = UserFactory.create()
    subscribe(user, "pro")
    granted_max = 500
    spent = 0
    for step, tier in enumerate(tiers):
        services.subscription_sync(
            user=user,
            state=state(tier=tier, observed_at=T0 + timedelta(minutes=step + 1)),
            idempotency_key=f"p:{user.pk}:{step}",
        )
        granted_max = max(granted_max, catalogue.TIERS[tier].monthly_credits)
        if step < len(spends):
            try:
                services.credits_spend(
                    user=user,
                    action="ai_ticker_analysis",
                    quantity=min(spends[step], 1000),
                    idempotency_key=f"s{step}",
                )
                spent += min(spends[step], 1000)
            except InsufficientCredits:
                pass
        account = account_of(user)
        assert account.monthly_remaining + spent <= granted_max
