from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet, Sum

from activities.models import Activity, LedgerEntry


def ledger_for_user(*, user_id: int) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(user_id=user_id).order_by("-id")


def activities_for_user(*, user_id: int, activity_type: str | None = None) -> QuerySet[Activity]:
    queryset = Activity.objects.filter(user_id=user_id)
    if activity_type:
        queryset = queryset.filter(activity_type=activity_type)
    return queryset.order_by("-id")


@dataclass(frozen=True)
class LedgerTotals:
    monthly: int
    purchased: int


def ledger_totals(*, user_id: int) -> LedgerTotals:
    """What the ledger says the account holds: the sums of its deltas."""
    sums = LedgerEntry.objects.filter(user_id=user_id).aggregate(
        monthly=Sum("monthly_delta"), purchased=Sum("purchased_delta")
    )
    return LedgerTotals(monthly=sums["monthly"] or 0, purchased=sums["purchased"] or 0)
