from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from activities.models import Activity, ActivityType, Actor, LedgerEntry, LedgerKind
from hrvstr.db import insert_unless_present


def ledger_append(
    *,
    user: User,
    kind: LedgerKind,
    monthly_delta: int,
    purchased_delta: int,
    monthly_remaining_after: int,
    purchased_after: int,
    tier_after: str,
    actor: Actor,
    idempotency_key: str,
    reason: str = "",
    source: str = "",
    actor_user: User | None = None,
    details: dict[str, Any] | None = None,
) -> LedgerEntry:
    """Insert one ledger row; the caller holds the account's row lock."""
    return LedgerEntry.objects.create(
        user=user,
        kind=kind,
        monthly_delta=monthly_delta,
        purchased_delta=purchased_delta,
        monthly_remaining_after=monthly_remaining_after,
        purchased_after=purchased_after,
        tier_after=tier_after,
        actor=actor,
        actor_user=actor_user,
        reason=reason[:500],
        source=source[:255],
        idempotency_key=idempotency_key,
        details=details or {},
    )


def activity_record(
    *,
    user: User,
    activity_type: ActivityType,
    title: str,
    description: str = "",
    symbol: str = "",
    ledger_entry: LedgerEntry | None = None,
    dedupe_key: str | None = None,
) -> Activity | None:
    """Add a line to the user's feed; with a ``dedupe_key`` a second call records nothing."""
    fields = dict(
        user=user,
        activity_type=activity_type,
        title=title[:200],
        description=description,
        symbol=symbol[:16],
        ledger_entry=ledger_entry,
        dedupe_key=dedupe_key,
    )
    if dedupe_key is None:
        return Activity.objects.create(**fields)
    activity = Activity(**fields)
    return activity if insert_unless_present(activity) else None
