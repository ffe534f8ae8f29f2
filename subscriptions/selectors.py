"""Reads: what the SPA and the pages show about tiers and credits. Nothing here writes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from activities.models import SPENDING_KINDS, LedgerEntry
from activities.selectors import ledger_totals
from subscriptions import catalogue
from subscriptions.models import ComponentUnlock, CreditAccount


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def credits_summary(*, account: CreditAccount, now: datetime) -> dict[str, Any]:
    seconds_left = max((account.period_end - now).total_seconds(), 0)
    return {
        "monthly": account.monthly_allowance,
        "purchased": account.purchased_balance,
        "used": account.monthly_used,
        "total": account.monthly_allowance + account.purchased_balance,
        "remaining": account.remaining,
        "monthlyRemaining": account.monthly_remaining,
        "resetDate": _iso(account.period_end),
        "daysUntilReset": int(-(-seconds_left // 86400)),  # a partial day counts as a day
    }


def tier_info(*, account: CreditAccount, now: datetime | None = None) -> dict[str, Any]:
    """Everything the SPA's tier badge and credit meter need, from the account row alone."""
    now = now or timezone.now()
    tier = catalogue.TIERS[account.tier]
    allowance = account.monthly_allowance
    in_grace = account.in_grace(now)
    return {
        "tier": tier.key,
        "tierName": tier.name,
        "credits": credits_summary(account=account, now=now),
        "limits": dict(tier.limits),
        "features": list(tier.features),
        "usage": {
            "creditsUsedThisPeriod": account.monthly_used,
            "percentUsed": round(100 * account.monthly_used / allowance) if allowance else 0,
            "periodStart": _iso(account.period_start),
            "periodEnd": _iso(account.period_end),
        },
        "subscription": {
            "status": account.subscription_status,
            "interval": account.billing_interval or None,
            "cancelAtPeriodEnd": account.cancel_at_period_end,
            "pendingTier": account.pending_tier or None,
            "graceUntil": _iso(account.grace_until),
            "paymentWarning": (
                "Your last payment failed. Update your card before "
                f"{account.grace_until:%d %b %Y} to keep {tier.name}."
                if in_grace
                else None
            ),
        },
    }


def available_tiers() -> list[dict[str, Any]]:
    return [
        {
            "id": tier.key,
            "name": tier.name,
            "description": tier.description,
            "monthlyCredits": tier.monthly_credits,
            "priceMonthlyCents": tier.price_monthly_cents,
            "priceYearlyCents": tier.price_yearly_cents,
            "limits": dict(tier.limits),
            "features": list(tier.features),
            "unlockDurationMinutes": int(tier.unlock_duration.total_seconds() // 60),
        }
        for tier in catalogue.TIERS.values()
    ]


def bundles_for_sale() -> list[dict[str, Any]]:
    return [
        {
            "id": bundle.key,
            "name": bundle.name,
            "credits": bundle.credits,
            "priceCents": bundle.price_cents,
            "requiredTiers": catalogue.tiers_allowing(bundle),
        }
        for bundle in catalogue.BUNDLES.values()
    ]


def unlocks_active(*, user_id: int, now: datetime | None = None) -> QuerySet[ComponentUnlock]:
    now = now or timezone.now()
    return ComponentUnlock.objects.filter(user_id=user_id, expires_at__gt=now).order_by(
        "expires_at"
    )


def unlocks_recently_expired(
    *, user_id: int, now: datetime | None = None, hours: int = 24
) -> QuerySet[ComponentUnlock]:
    now = now or timezone.now()
    return ComponentUnlock.objects.filter(
        user_id=user_id,
        expires_at__lte=now,
        expires_at__gt=now - timedelta(hours=hours),
    ).order_by("-expires_at")


def unlock_as_json(unlock: ComponentUnlock, *, now: datetime) -> dict[str, Any]:
    spec = catalogue.COMPONENTS.get(unlock.component)
    seconds_left = max(int((unlock.expires_at - now).total_seconds()), 0)
    return {
        "id": unlock.pk,
        "session_id": f"unlock_{unlock.pk}",
        "component": unlock.component,
        "name": spec.name if spec else unlock.component,
        "creditsUsed": unlock.cost,
        "unlockedAt": _iso(unlock.unlocked_at),
        "expiresAt": _iso(unlock.expires_at),
        "secondsRemaining": seconds_left,
        # The original SPA counts in hours, to a tenth.
        "timeRemainingHours": round(seconds_left / 3600, 1),
        "tier": unlock.tier,
    }


def expiration_as_json(unlock: ComponentUnlock, *, now: datetime) -> dict[str, Any]:
    spec = catalogue.COMPONENTS.get(unlock.component)
    return {
        **unlock_as_json(unlock, now=now),
        "expiredAt": _iso(unlock.expires_at),
        "description": f"Your {spec.name if spec else unlock.component} access has expired",
    }


def balance(*, account: CreditAccount, now: datetime) -> dict[str, Any]:
    """The credits in the original's ``/api/credits/balance`` shape, and in ours (``data``)."""
    tier = catalogue.TIERS[account.tier]
    summary = credits_summary(account=account, now=now)
    return {
        "success": True,
        "balance": {
            "remaining": summary["remaining"],
            "total": summary["total"],
            "used": summary["used"],
            "monthly_allocation": summary["monthly"],
            "purchased": summary["purchased"],
            "tier": tier.key,
        },
        "tierLimits": {
            "monthly_credits": tier.monthly_credits,
            "can_purchase": any(tier.allows(bundle) for bundle in catalogue.BUNDLES.values()),
            "features": [a.key for a in catalogue.CREDIT_ACTIONS.values() if tier.allows(a)],
            "discount_rate": tier.action_discount_rate,
        },
        "creditCosts": {action.key: action.cost for action in catalogue.CREDIT_ACTIONS.values()},
        "data": summary | {"tier": tier.key},
    }


def action_quote(*, action: str, quantity: int, tier: str) -> dict[str, Any]:
    """What ``tier`` pays for ``action`` x ``quantity``, with the base cost and the discount."""
    from subscriptions.services import action_get

    entry = action_get(action=action, quantity=quantity)
    spec = catalogue.TIERS[tier]
    cost = entry.unit_cost(spec) * quantity
    base = entry.cost * quantity
    return {
        "action": action,
        "quantity": quantity,
        "cost": cost,
        "baseCost": base,
        "discount": base - cost,
        "discountRate": spec.action_discount_rate,
        "tier": tier,
        "hasAccess": spec.allows(entry),
    }


def usage_stats(*, account: CreditAccount, now: datetime) -> dict[str, Any]:
    """Credits spent this period, by action or component (released holds count back)."""
    by_action: dict[str, int] = {}
    rows = LedgerEntry.objects.filter(
        user_id=account.user_id, created_at__gte=account.period_start, kind__in=SPENDING_KINDS
    ).values_list("details", "monthly_delta", "purchased_delta")
    for details, monthly_delta, purchased_delta in rows:
        name = details.get("action") or details.get("component") or "other"
        by_action[name] = by_action.get(name, 0) - (monthly_delta + purchased_delta)
    return {
        "tier": account.tier,
        "period": {"start": _iso(account.period_start), "end": _iso(account.period_end)},
        "credits": credits_summary(account=account, now=now),
        "spentThisPeriod": sum(by_action.values()),
        "byAction": by_action,
        "activeUnlocks": unlocks_active(user_id=account.user_id, now=now).count(),
    }


def ledger_drift(*, account: CreditAccount) -> dict[str, int]:
    """How far the account is from what its ledger sums to; empty when they agree."""
    totals = ledger_totals(user_id=account.user_id)
    drift = {
        "monthly": account.monthly_remaining - totals.monthly,
        "purchased": account.purchased_balance - totals.purchased,
    }
    return {bucket: value for bucket, value in drift.items() if value}
