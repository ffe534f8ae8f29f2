"""The product catalogue: tiers, limits, feature costs, unlockable components and bundles.

This is data, not logic: views, services and the Stripe sync read it from here and nowhere
else. Money is integer cents; credits are integer units. Stripe prices are found by lookup key
(``pro_monthly``, ``credits_250``), so no Stripe ids live in code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from types import MappingProxyType
from typing import Literal, NamedTuple

Interval = Literal["month", "year"]
INTERVALS: tuple[Interval, ...] = ("month", "year")
UNLIMITED = None  # a limit of None means "no limit"


@dataclass(frozen=True)
class Tier:
    key: str
    name: str
    monthly_credits: int
    price_monthly_cents: int
    price_yearly_cents: int
    unlock_duration: timedelta
    limits: MappingProxyType[str, int | None]
    features: tuple[str, ...]  # the labels the SPA shows (the original's data sources)
    # What this tier pays for an action, in percent of its base cost (rounded up, never below 1
    # credit): the original charged elite ceil(cost x 0.8) and institutional ceil(cost x 0.67).
    action_cost_percent: int = 100
    description: str = ""
    # Staff may give an account of this tier its own monthly allowance (a sized contract).
    allowance_sized_by_staff: bool = False
    # Set from the tier's place in TIERS (cheapest first), never by hand.
    rank: int = field(default=-1, compare=False)

    @property
    def is_paid(self) -> bool:
        return self.price_monthly_cents > 0

    def lookup_key(self, interval: Interval) -> str:
        return f"{self.key}_{'monthly' if interval == 'month' else 'yearly'}"

    def price_cents(self, interval: Interval) -> int:
        return self.price_monthly_cents if interval == "month" else self.price_yearly_cents

    @property
    def action_discount_rate(self) -> float:
        """The discount as the original's API reported it (0.2 for elite); display only."""
        return (100 - self.action_cost_percent) / 100

    def at_least(self, other: Tier | str) -> bool:
        """Whether this tier is ``other`` or above it (ranks follow the catalogue's order)."""
        other = TIERS[other] if isinstance(other, str) else other
        return self.rank >= other.rank

    def allows(self, feature: Feature) -> bool:
        """May this tier have ``feature``: a credit action, a component, a bundle, or one of
        the data-source labels in ``features``? The one gate every page, API and service asks:
        every sellable thing names the tiers it is for in ``tiers`` (None: every tier)."""
        if isinstance(feature, str):
            return feature in self.features
        return feature.tiers is None or self.key in feature.tiers


@dataclass(frozen=True)
class CreditAction:
    key: str
    name: str
    cost: int  # base credits per unit of quantity, before the tier's discount
    # Tiers whose plan lists the action (the original's ``hasAccess``); None means every tier.
    tiers: tuple[str, ...] | None = None

    def unit_cost(self, tier: Tier) -> int:
        """Credits per unit for ``tier``: integer arithmetic, so no float rounding surprises."""
        return max(1, -(-self.cost * tier.action_cost_percent // 100))


@dataclass(frozen=True)
class Component:
    key: str
    name: str
    cost: int  # credits for one unlock
    tiers: tuple[str, ...] | None = None  # None: every tier


@dataclass(frozen=True)
class Bundle:
    key: str
    name: str
    credits: int
    price_cents: int
    lookup_key: str
    tiers: tuple[str, ...] | None = None  # None: every tier


Feature = CreditAction | Component | Bundle | str


def _limits(**values: int | None) -> MappingProxyType[str, int | None]:
    return MappingProxyType(dict(values))


# The data sources each plan opens, with the labels the SPA lists on its tier pages.
_FREE_FEATURES = ("FinViz", "SEC-Insider", "Earnings", "Yahoo")
_PRO_FEATURES = ("FinViz", "SEC-Insider", "SEC-Institutional", "Earnings", "Reddit", "Yahoo")
_ELITE_FEATURES = _PRO_FEATURES + ("AlphaVantage",)
_INSTITUTIONAL_FEATURES = _ELITE_FEATURES


def ranked_tiers(*tiers: Tier) -> MappingProxyType[str, Tier]:
    """The tiers keyed by ``key``, each ranked by its place (the first is the lowest)."""
    return MappingProxyType({tier.key: replace(tier, rank=rank) for rank, tier in enumerate(tiers)})


TIERS: MappingProxyType[str, Tier] = ranked_tiers(
    Tier(
        key="free",
        name="Free",
        monthly_credits=50,
        price_monthly_cents=0,
        price_yearly_cents=0,
        unlock_duration=timedelta(minutes=30),
        limits=_limits(watchlist=3, alerts=0, searches_per_day=25),
        features=_FREE_FEATURES,
        description="Try HRVSTR with basic sentiment and a small watchlist.",
    ),
    Tier(
        key="pro",
        name="Pro",
        monthly_credits=500,
        price_monthly_cents=1900,
        price_yearly_cents=19000,
        unlock_duration=timedelta(hours=2),
        limits=_limits(watchlist=25, alerts=10, searches_per_day=500),
        features=_PRO_FEATURES,
        description="For active traders: institutional holdings and Reddit sentiment.",
    ),
    Tier(
        key="elite",
        name="Elite",
        monthly_credits=2000,
        price_monthly_cents=4900,
        price_yearly_cents=49000,
        unlock_duration=timedelta(hours=4),
        limits=_limits(watchlist=UNLIMITED, alerts=100, searches_per_day=UNLIMITED),
        features=_ELITE_FEATURES,
        action_cost_percent=80,
        description="Every data source, AlphaVantage included; premium actions cost less.",
    ),
    Tier(
        key="institutional",
        name="Institutional",
        monthly_credits=10000,
        price_monthly_cents=19900,
        price_yearly_cents=199000,
        unlock_duration=timedelta(hours=8),
        limits=_limits(watchlist=UNLIMITED, alerts=UNLIMITED, searches_per_day=UNLIMITED),
        features=_INSTITUTIONAL_FEATURES,
        action_cost_percent=67,
        allowance_sized_by_staff=True,
        description="Teams and funds: API access and an allowance sized to you.",
    ),
)
FREE_TIER = TIERS["free"]


def tiers_from(lowest: str) -> tuple[str, ...]:
    """``lowest`` and every tier above it: the ``tiers`` of a feature sold from a plan up."""
    return tuple(key for key, tier in TIERS.items() if tier.at_least(lowest))


def tier_choices() -> list[tuple[str, str]]:
    """The model fields' choices: a callable, so a new tier needs no migration."""
    return [(tier.key, tier.name) for tier in TIERS.values()]


_PRO_AND_ABOVE = tiers_from("pro")
# The original's premium actions and base costs (its premiumCreditMiddleware), with the tiers
# whose plan listed each one.
CREDIT_ACTIONS: MappingProxyType[str, CreditAction] = MappingProxyType(
    {
        action.key: action
        for action in (
            CreditAction("reddit_sentiment", "Reddit sentiment", 5, _PRO_AND_ABOVE),
            CreditAction("finviz_sentiment", "FinViz sentiment", 3, _PRO_AND_ABOVE),
            CreditAction("yahoo_sentiment", "Yahoo sentiment", 2, _PRO_AND_ABOVE),
            CreditAction("research_bundle", "Research bundle", 12, ("pro",)),
            CreditAction("deep_analysis", "Deep analysis", 8, ("elite", "institutional")),
            CreditAction("historical_data", "Historical data", 4, ("institutional",)),
            CreditAction("ai_ticker_analysis", "AI ticker analysis", 1),
            CreditAction("ai_reddit_analysis", "AI Reddit analysis", 1),
            CreditAction("ai_market_analysis", "AI market analysis", 1),
            CreditAction("ai_ticker_chart_analysis", "AI ticker chart analysis", 1),
            CreditAction("elite_research_bundle", "Elite research bundle", 10, ("elite",)),
            CreditAction("institutional_bundle", "Institutional bundle", 8, ("institutional",)),
        )
    }
)
MAX_ACTION_QUANTITY = 1000

COMPONENTS: MappingProxyType[str, Component] = MappingProxyType(
    {
        component.key: component
        for component in (
            Component("chart", "Price chart", 10),
            Component("scores", "HRVSTR scores", 8),
            Component("reddit", "Reddit sentiment", 12, tiers=_PRO_AND_ABOVE),
            Component("insiderTrading", "Insider trading", 10),
            Component("institutionalHoldings", "Institutional holdings", 15, tiers=_PRO_AND_ABOVE),
            Component("earningsAnalysis", "Earnings analysis", 8, tiers=_PRO_AND_ABOVE),
            Component("upcomingEarnings", "Upcoming earnings", 12),
        )
    }
)

BUNDLES: MappingProxyType[str, Bundle] = MappingProxyType(
    {
        bundle.key: bundle
        for bundle in (
            Bundle(
                key="credits_250",
                name="250 credits",
                credits=250,
                price_cents=1000,
                lookup_key="credits_250",
                tiers=_PRO_AND_ABOVE,  # bundles are sold to paid tiers only (product rule)
            ),
        )
    }
)


@dataclass(frozen=True)
class PriceEntry:
    """One sellable Stripe price, found in Stripe by ``lookup_key``."""

    lookup_key: str
    product_key: str
    product_name: str
    amount_cents: int
    interval: Interval | None  # None for one-off (bundle) prices
    tier: Tier | None = None
    bundle: Bundle | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def price_entries() -> list[PriceEntry]:
    """Every price the catalogue sells, for the Stripe sync and the lookups below."""
    entries: list[PriceEntry] = []
    for tier in TIERS.values():
        if not tier.is_paid:
            continue
        for interval in INTERVALS:
            entries.append(
                PriceEntry(
                    lookup_key=tier.lookup_key(interval),
                    product_key=f"tier_{tier.key}",
                    product_name=f"HRVSTR {tier.name}",
                    amount_cents=tier.price_cents(interval),
                    interval=interval,
                    tier=tier,
                    metadata={"hrvstr_tier": tier.key, "hrvstr_interval": interval},
                )
            )
    for bundle in BUNDLES.values():
        entries.append(
            PriceEntry(
                lookup_key=bundle.lookup_key,
                product_key=f"bundle_{bundle.key}",
                product_name=f"HRVSTR {bundle.name}",
                amount_cents=bundle.price_cents,
                interval=None,
                bundle=bundle,
                metadata={"hrvstr_bundle": bundle.key, "hrvstr_credits": str(bundle.credits)},
            )
        )
    return entries


PRICES_BY_LOOKUP_KEY: MappingProxyType[str, PriceEntry] = MappingProxyType(
    {entry.lookup_key: entry for entry in price_entries()}
)


def tiers_allowing(feature: Feature) -> list[str]:
    """The keys of the tiers that allow ``feature``: the ``requiredTiers`` of a 403."""
    return [tier.key for tier in TIERS.values() if tier.allows(feature)]


class Plan(NamedTuple):
    """A tier at a billing interval ("" when the account has none, as on free)."""

    tier: Tier
    interval: str


PlanChangeKind = Literal["upgrade", "downgrade", "same"]


def plan_change_kind(current: Plan | None, target: Plan) -> PlanChangeKind:
    """What moving from ``current`` to ``target`` is: a higher tier, or a yearly plan for a
    monthly one, is an upgrade (invoiced now, applied once paid); a lower tier or a shorter
    interval is a downgrade (scheduled for the period end); the same plan is "same".
    No current plan (nothing to change from) counts as an upgrade."""
    if current is None:
        return "upgrade"
    if target.tier.rank != current.tier.rank:
        return "upgrade" if target.tier.rank > current.tier.rank else "downgrade"
    if target.interval == current.interval:
        return "same"
    if target.interval == "year" and current.interval == "month":
        return "upgrade"
    return "downgrade"
