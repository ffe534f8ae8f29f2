from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.paginator import Page, Paginator
from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from activities.charts import BarChart, bar_chart
from activities.models import SPENDING_KINDS, Activity, ActivityType, LedgerEntry, LedgerKind

CHART_DAYS = 30
PAGE_SIZE = 25


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


@dataclass(frozen=True)
class LedgerDay:
    day: date
    granted: int  # credits added (purchases, resets, staff grants)
    spent: int  # credits spent (released holds count back)


def ledger_daily(
    *,
    since: datetime,
    spending_kinds: Iterable[str],
    user_id: int | None = None,
) -> list[LedgerDay]:
    """Credits granted and spent per day (UTC) since ``since``, for one user or everyone.

    Days without rows are filled with zeros so a chart has one bar per day.
    """
    spending = list(spending_kinds)
    rows = LedgerEntry.objects.filter(created_at__gte=since)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    total = F("monthly_delta") + F("purchased_delta")
    sums = (
        rows.annotate(day=TruncDate("created_at", tzinfo=UTC), total=total)
        .values("day")
        .annotate(
            spent=Sum("total", filter=Q(kind__in=spending)),
            granted=Sum("total", filter=Q(total__gt=0) & ~Q(kind__in=spending)),
        )
    )
    by_day = {row["day"]: row for row in sums}
    first = since.astimezone(UTC).date()
    last = timezone.now().astimezone(UTC).date()
    days = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        row: Mapping[str, Any] = by_day.get(day, {})
        days.append(
            LedgerDay(day=day, granted=row.get("granted") or 0, spent=-(row.get("spent") or 0))
        )
    return days


def credits_used_chart(*, user_id: int, now: datetime) -> BarChart:
    days = ledger_daily(
        since=(now - timedelta(days=CHART_DAYS - 1)).replace(
            hour=0, minute=0, second=0, microsecond=0
        ),
        spending_kinds=SPENDING_KINDS,
        user_id=user_id,
    )
    return bar_chart(
        [(d.day, d.spent) for d in days], label=f"Credits used per day, last {CHART_DAYS} days"
    )


def activity_page(
    *, user: User, show: str, kind: str, page: str | int, now: datetime
) -> dict[str, Any]:
    """/activity/: the feed or the ledger (filtered by type, paginated) and the usage chart."""
    rows: QuerySet[LedgerEntry] | QuerySet[Activity]
    if show == "ledger":
        valid = dict(LedgerKind.choices)
        rows = ledger_for_user(user_id=user.pk)
        if kind in valid:
            rows = rows.filter(kind=kind)
        choices = LedgerKind.choices
    else:
        valid = dict(ActivityType.choices)
        rows = activities_for_user(user_id=user.pk, activity_type=kind if kind in valid else None)
        choices = ActivityType.choices
    page_obj: Page = Paginator(rows, PAGE_SIZE).get_page(page)
    return {
        "show": "ledger" if show == "ledger" else "feed",
        "kind": kind if kind in valid else "",
        "choices": choices,
        "page_obj": page_obj,
        "chart": credits_used_chart(user_id=user.pk, now=now),
    }
