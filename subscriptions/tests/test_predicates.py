"""The questions about an account and the catalogue, each answered in one place (STYLE rule 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from billing.services import BundleRequiresPaidTier, change_applies_now
from subscriptions import catalogue
from subscriptions.catalogue import TIERS, Plan, plan_change_kind
from subscriptions.errors import TierRequired, require_tier
from subscriptions.models import LIVE_STATUSES, CreditAccount, SubscriptionStatus

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def account(**fields) -> CreditAccount:
    return CreditAccount(**fields)  # unsaved: the predicates read the row, never the database


@pytest.mark.parametrize(
    ("status", "grace_until", "in_grace", "over"),
    [
        (SubscriptionStatus.PAST_DUE, NOW + timedelta(seconds=1), True, False),
        (SubscriptionStatus.PAST_DUE, NOW, False, True),
        (SubscriptionStatus.PAST_DUE, NOW - timedelta(days=1), False, True),
        (SubscriptionStatus.PAST_DUE, None, False, False),
        (SubscriptionStatus.ACTIVE, NOW + timedelta(days=3), False, False),
        (SubscriptionStatus.UNPAID, NOW - timedelta(days=1), False, False),
    ],
)
def test_in_grace_and_grace_over_split_at_the_deadline(status, grace_until, in_grace, over):
    row = account(subscription_status=status, grace_until=grace_until)
    assert row.in_grace(NOW) is in_grace
    assert row.grace_over(NOW) is over


@pytest.mark.django_db
def test_the_grace_queries_select_what_the_predicates_answer(owner):
    row = CreditAccount.objects.get(user=owner)
    for grace_until in (NOW + timedelta(days=1), NOW, NOW - timedelta(days=1)):
        CreditAccount.objects.filter(pk=row.pk).update(
            subscription_status=SubscriptionStatus.PAST_DUE, grace_until=grace_until
        )
        row.refresh_from_db()
        assert CreditAccount.objects.in_grace(NOW).filter(pk=row.pk).exists() is row.in_grace(NOW)
        over = CreditAccount.objects.filter(CreditAccount.objects.grace_over_q(NOW), pk=row.pk)
        assert over.exists() is row.grace_over(NOW)


@override_settings(BILLING_GRACE_PERIOD_DAYS=7)
def test_grace_deadline_starts_at_the_failure_and_a_running_grace_keeps_its_end():
    assert account().grace_deadline(past_due_at=NOW) == NOW + timedelta(days=7)
    running = account(grace_until=NOW + timedelta(days=2))
    assert running.grace_deadline(past_due_at=NOW + timedelta(days=1)) == NOW + timedelta(days=2)


@pytest.mark.parametrize("status", list(SubscriptionStatus))
def test_has_live_subscription_needs_a_subscription_in_a_live_status(status):
    live = status in {"active", "trialing", "past_due"}
    assert (status in LIVE_STATUSES) is live
    assert account(subscription_status=status).subscription_live is live
    subscribed = account(subscription_status=status, stripe_subscription_id="sub_1")
    assert subscribed.has_live_subscription is live
    assert account(subscription_status=status).has_live_subscription is False


def test_live_statuses_match_stripes_plain_strings():
    assert {"active", "trialing", "past_due"} == set(LIVE_STATUSES)
    assert "canceled" not in LIVE_STATUSES


def test_at_least_follows_the_catalogue_order():
    free, pro, elite = TIERS["free"], TIERS["pro"], TIERS["elite"]
    assert elite.at_least(pro) and elite.at_least("elite") and pro.at_least(free)
    assert not free.at_least("pro")
    assert not pro.at_least(elite)


def test_ranks_come_from_the_catalogue_order_not_from_hand_numbers():
    assert [tier.rank for tier in TIERS.values()] == list(range(len(TIERS)))
    assert catalogue.tiers_from("elite") == ("elite", "institutional")
    assert catalogue.tier_choices()[0] == ("free", "Free")


def test_allows_gates_actions_components_bundles_and_features():
    free, pro, elite = TIERS["free"], TIERS["pro"], TIERS["elite"]
    assert not free.allows(catalogue.CREDIT_ACTIONS["reddit_sentiment"])
    assert pro.allows(catalogue.CREDIT_ACTIONS["research_bundle"])
    assert not elite.allows(catalogue.CREDIT_ACTIONS["research_bundle"])  # listed for pro only
    assert free.allows(catalogue.CREDIT_ACTIONS["ai_ticker_analysis"])  # every tier
    assert not free.allows(catalogue.COMPONENTS["reddit"])
    assert elite.allows(catalogue.COMPONENTS["reddit"])
    assert free.allows(catalogue.COMPONENTS["chart"])
    assert not free.allows(catalogue.BUNDLES["credits_250"])
    assert pro.allows(catalogue.BUNDLES["credits_250"])
    assert not free.allows("Reddit") and pro.allows("Reddit")
    assert catalogue.tiers_allowing(catalogue.BUNDLES["credits_250"]) == [
        *catalogue.tiers_from("pro")
    ]


def test_require_tier_answers_one_shape_and_passes_when_allowed():
    require_tier("pro", catalogue.COMPONENTS["reddit"])  # allowed: no error
    with pytest.raises(TierRequired) as excinfo:
        require_tier("free", catalogue.COMPONENTS["reddit"])
    assert excinfo.value.status == 403
    assert str(excinfo.value) == "Reddit sentiment needs the Pro plan or above"
    assert excinfo.value.extra == {
        "feature": "reddit",
        "tier": "free",
        "requiredTiers": [*catalogue.tiers_from("pro")],
    }
    with pytest.raises(TierRequired, match=r"^Research bundle needs the Pro plan$"):
        require_tier("elite", catalogue.CREDIT_ACTIONS["research_bundle"])  # pro only, not above
    with pytest.raises(BundleRequiresPaidTier) as refused:
        require_tier(TIERS["free"], catalogue.BUNDLES["credits_250"], error=BundleRequiresPaidTier)
    assert refused.value.status == 403
    assert set(refused.value.extra) == {"feature", "tier", "requiredTiers"}


@pytest.mark.parametrize(
    ("current", "target", "kind"),
    [
        (("free", ""), ("pro", "month"), "upgrade"),
        (("pro", "month"), ("elite", "month"), "upgrade"),
        (("elite", "year"), ("pro", "year"), "downgrade"),
        (("pro", "month"), ("pro", "year"), "upgrade"),
        (("pro", "year"), ("pro", "month"), "downgrade"),
        (("pro", "year"), ("pro", "year"), "same"),
        (("elite", "month"), ("pro", "year"), "downgrade"),  # the tier decides before the interval
    ],
)
def test_plan_change_kind(current, target, kind):
    before, after = Plan(TIERS[current[0]], current[1]), Plan(TIERS[target[0]], target[1])
    assert plan_change_kind(before, after) == kind


def test_no_current_plan_is_an_upgrade_and_only_upgrades_apply_now():
    assert plan_change_kind(None, Plan(TIERS["pro"], "month")) == "upgrade"
    prices = catalogue.PRICES_BY_LOOKUP_KEY
    assert change_applies_now(prices["pro_monthly"], prices["pro_yearly"])
    assert not change_applies_now(prices["pro_yearly"], prices["pro_monthly"])
    assert not change_applies_now(prices["elite_monthly"], prices["pro_yearly"])
    assert change_applies_now(None, prices["pro_monthly"])
