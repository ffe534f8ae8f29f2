"""Calendar arithmetic for monthly allowance periods."""

from __future__ import annotations

import calendar
from datetime import datetime


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` moved by whole months, the day clamped to the month (31 Jan -> 28 Feb)."""
    years, month_index = divmod(moment.month - 1 + months, 12)
    year = moment.year + years
    month = month_index + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def monthly_period_containing(anchor: datetime, moment: datetime) -> tuple[datetime, datetime]:
    """The monthly period, counted from ``anchor``, that contains ``moment`` (>= anchor)."""
    months = (moment.year - anchor.year) * 12 + (moment.month - anchor.month)
    months = max(months, 0)
    start = add_months(anchor, months)
    if start > moment:
        months -= 1
        start = add_months(anchor, months)
    end = add_months(anchor, months + 1)
    while end <= moment:  # only when clamping made a period short; bounded by a step or two
        months += 1
        start, end = end, add_months(anchor, months + 1)
    return start, end
