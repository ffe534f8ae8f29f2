"""Reads for the support dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q
from djstripe.models import WebhookEventTrigger

from activities.models import SPENDING_KINDS
from activities.selectors import ledger_daily
from subscriptions import catalogue
from subscriptions.models import CreditAccount, SubscriptionStatus

# Revenue that is coming in: trials have not paid yet and past-due accounts are not paying.
MRR_STATUSES = (SubscriptionStatus.ACTIVE,)


def accounts_per_tier() -> list[dict[str, Any]]:
    counts = dict(
        CreditAccount.objects.values_list("tier").annotate(n=Count("id")).values_list("tier", "n")
    )
    return [{"tier": tier, "count": counts.get(tier.key, 0)} for tier in catalogue.TIERS.values()]


def mrr_cents() -> dict[str, Any]:
    """Monthly recurring revenue in cents: the catalogue prices of active subscriptions (a
    yearly price counts a twelfth, rounded down). Unknown lookup keys are counted, not priced."""
    rows = (
        CreditAccount.objects.filter(subscription_status__in=MRR_STATUSES)
        .exclude(stripe_subscription_id="")
        .values_list("stripe_price_lookup_key")
        .annotate(n=Count("id"))
    )
    total = 0
    unpriced = 0
    by_key = []
    for lookup_key, count in rows:
        entry = catalogue.PRICES_BY_LOOKUP_KEY.get(lookup_key)
        if entry is None or entry.interval is None:
            unpriced += count
            continue
        monthly = entry.amount_cents if entry.interval == "month" else entry.amount_cents // 12
        total += monthly * count
        by_key.append({"lookup_key": lookup_key, "count": count, "mrr_cents": monthly * count})
    by_key.sort(key=lambda row: row["lookup_key"])
    return {"total_cents": total, "by_key": by_key, "unpriced": unpriced}


def failed_webhook_events(*, limit: int = 20):
    failed = WebhookEventTrigger.objects.filter(Q(valid=False) | Q(processed=False))
    return failed.count(), list(failed.select_related("event").order_by("-created")[:limit])


def accounts_in_grace(*, now: datetime):
    return list(
        CreditAccount.objects.filter(
            subscription_status=SubscriptionStatus.PAST_DUE, grace_until__gt=now
        )
        .select_related("user")
        .order_by("grace_until")[:50]
    )


def credits_daily(*, now: datetime, days: int = 30):
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return ledger_daily(since=since, spending_kinds=SPENDING_KINDS)


def dashboard(*, now: datetime) -> dict[str, Any]:
    failed_count, failed = failed_webhook_events()
    return {
        "tiers": accounts_per_tier(),
        "accounts_total": CreditAccount.objects.count(),
        "mrr": mrr_cents(),
        "daily": credits_daily(now=now),
        "failed_count": failed_count,
        "failed": failed,
        "grace": accounts_in_grace(now=now),
    }
