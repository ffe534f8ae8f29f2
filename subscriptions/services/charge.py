"""A charge in one statement on PostgreSQL: the conditional UPDATE of the account and the
ledger row it explains, in one round trip.

The locked path (``lock_account`` then SELECT, check, INSERT, UPDATE) holds the hot row for four
round trips, and every other spender of the account waits that long. Here PostgreSQL takes the
row lock, checks the balance, moves the buckets and appends the ledger row inside ONE
statement::

    WITH acct AS (UPDATE account SET <split from the row itself> ...
                  WHERE user_id = %s AND remaining >= cost AND nothing fell due
                  RETURNING <the split>, ...),                     -- the row lock
         led AS (INSERT INTO ledger ... SELECT ... FROM acct RETURNING ...)
    SELECT ... FROM led

So a charge can never overdraw (the WHERE is evaluated on the locked, latest row; the CHECK
constraints stay the last line), and the ledger row exists exactly when the account changed.
The split between the allowance and purchased credits is worked out in the UPDATE's SET, on
the row it updates, and read back through ``last_charge_from_allowance``. (It used to be
worked out in a ``SELECT ... FOR UPDATE`` before the UPDATE, which under contention read
another version of the row than the one updated: the soak saw a split applied to a newer row,
used 50 + 8 of an allowance of 50, refused by the CHECK as a 500; the guard added for it then
sent 9 in 10 contended charges to the locked path, bench/spend.py.)
When the statement changes nothing (not enough credits, or something fell due: a period to
roll, a hold to expire, a grace period over, or no account yet) the caller takes the locked
path, which does what fell due and answers exactly. A repeated idempotency key makes the
INSERT fail and the whole statement with it (IntegrityError): the caller replays the first
answer. SQLite has no row locks to speak of: it always takes the locked path.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import connection

from activities.models import Activity, ActivityType, Actor, LedgerEntry, LedgerKind
from hrvstr.db import prepared_cursor
from subscriptions.models import ComponentUnlock, CreditAccount, SubscriptionStatus

# The charge's split, worked out in the UPDATE's SET from the row being updated: SET reads the
# row as it is when the UPDATE gets its lock (a concurrent charge's result included), and
# RETURNING reads the split back from the column it was written to. A split worked out in a
# separate ``SELECT ... FOR UPDATE`` first was not that row under contention (8 concurrent
# charges: 9 in 10 disagreed), and applied to a newer row it broke the allowance's CHECK.
_FROM_ALLOWANCE = "LEAST(%(cost)s, GREATEST(a.monthly_allowance - a.monthly_used, 0))"
_CHARGE_ACCOUNT = f"""
    UPDATE {CreditAccount._meta.db_table} AS a
    SET last_charge_from_allowance = {_FROM_ALLOWANCE},
        monthly_used = a.monthly_used + {_FROM_ALLOWANCE},
        purchased_balance = a.purchased_balance - (%(cost)s - {_FROM_ALLOWANCE}),
        version = a.version + 1,
        updated_at = %(now)s
    WHERE a.user_id = %(user_id)s
"""
_CHARGED = """
    RETURNING a.user_id, a.tier, a.last_charge_from_allowance AS from_monthly,
              a.monthly_allowance - a.monthly_used AS monthly_remaining_after,
              a.purchased_balance AS purchased_after
"""

_SQL = f"""
WITH acct AS ({_CHARGE_ACCOUNT}
      AND a.tier = %(tier)s
      AND (a.monthly_allowance - a.monthly_used) + a.purchased_balance >= %(cost)s
      AND a.period_end > %(now)s
      AND (a.next_hold_expiry_at IS NULL OR a.next_hold_expiry_at > %(now)s)
      AND NOT (a.subscription_status = %(past_due)s AND a.grace_until IS NOT NULL
               AND a.grace_until <= %(now)s)
    {_CHARGED}), led AS (
    INSERT INTO {LedgerEntry._meta.db_table} (
        user_id, kind, monthly_delta, purchased_delta, monthly_remaining_after,
        purchased_after, tier_after, actor, actor_user_id, reason, source, idempotency_key,
        details, created_at)
    SELECT user_id, %(kind)s, -from_monthly, -(%(cost)s - from_monthly),
           monthly_remaining_after, purchased_after, tier, %(actor)s, NULL, %(reason)s,
           %(source)s, %(key)s, %(details)s::jsonb, %(now)s
    FROM acct
    RETURNING id, user_id, kind, monthly_delta, purchased_delta, monthly_remaining_after,
              purchased_after, tier_after, actor, actor_user_id, reason, source,
              idempotency_key, details, created_at
)
SELECT id, user_id, kind, monthly_delta, purchased_delta, monthly_remaining_after,
       purchased_after, tier_after, actor, actor_user_id, reason, source, idempotency_key,
       details, created_at
FROM led
"""
_FIELDS = [
    "id",
    "user_id",
    "kind",
    "monthly_delta",
    "purchased_delta",
    "monthly_remaining_after",
    "purchased_after",
    "tier_after",
    "actor",
    "actor_user_id",
    "reason",
    "source",
    "idempotency_key",
    "details",
    "created_at",
]


def available() -> bool:
    return connection.vendor == "postgresql"


def charge_in_one_statement(
    *,
    user_id: int,
    tier: str,
    cost: int,
    kind: LedgerKind,
    idempotency_key: str,
    reason: str,
    source: str,
    details: dict[str, Any],
    now: datetime,
) -> LedgerEntry | None:
    """Charge ``cost`` (allowance first, then purchased) with its ledger row, or return None
    when the locked path must decide. ``cost`` was priced for ``tier``: an account on another
    tier by now (its discount differs) is left to the locked path too. Raises IntegrityError
    for a repeated key."""
    with prepared_cursor(connection) as cursor:
        cursor.execute(
            _SQL,
            {
                "user_id": user_id,
                "tier": tier,
                "cost": cost,
                "now": now,
                "past_due": SubscriptionStatus.PAST_DUE.value,
                "kind": kind.value,
                "actor": Actor.USER.value,
                "reason": reason[:500],
                "source": source[:255],
                "key": idempotency_key,
                "details": json.dumps(details),
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    details_index = _FIELDS.index("details")
    if isinstance(values[details_index], str):  # Django reads jsonb as text
        values[details_index] = json.loads(values[details_index])
    return LedgerEntry.from_db(connection.alias, _FIELDS, values)


_UNLOCK_SQL = f"""
WITH acct AS ({_CHARGE_ACCOUNT}
      AND a.tier = ANY(%(tiers)s)
      AND (a.monthly_allowance - a.monthly_used) + a.purchased_balance >= %(cost)s
      AND a.period_end > %(now)s
      AND (a.next_hold_expiry_at IS NULL OR a.next_hold_expiry_at > %(now)s)
      AND NOT (a.subscription_status = %(past_due)s AND a.grace_until IS NOT NULL
               AND a.grace_until <= %(now)s)
    {_CHARGED}), unl AS (
    INSERT INTO {ComponentUnlock._meta.db_table} (
        user_id, component, tier, cost, unlocked_at, expires_at, expiry_recorded)
    SELECT user_id, %(component)s, tier, %(cost)s, %(now)s,
           %(now)s + make_interval(secs => (%(durations)s::jsonb ->> tier)::int), FALSE
    FROM acct
    RETURNING id, expires_at
), led AS (
    INSERT INTO {LedgerEntry._meta.db_table} (
        user_id, kind, monthly_delta, purchased_delta, monthly_remaining_after,
        purchased_after, tier_after, actor, actor_user_id, reason, source, idempotency_key,
        details, created_at)
    SELECT acct.user_id, %(kind)s, -from_monthly, -(%(cost)s - from_monthly),
           monthly_remaining_after, purchased_after, tier, %(actor)s, NULL, %(reason)s,
           'unlock:' || unl.id, 'unlock:' || unl.id,
           jsonb_build_object('component', %(component)s::text, 'cost', %(cost)s::int,
                              'unlock_id', unl.id),
           %(now)s
    FROM acct, unl
    RETURNING id, user_id, kind, monthly_delta, purchased_delta, monthly_remaining_after,
              purchased_after, tier_after, actor, actor_user_id, reason, source,
              idempotency_key, details, created_at
), act AS (
    INSERT INTO {Activity._meta.db_table} (
        user_id, activity_type, title, description, symbol, ledger_entry_id, dedupe_key,
        created_at)
    SELECT led.user_id, %(activity_type)s, %(title)s,
           %(descriptions)s::jsonb ->> led.tier_after, '', led.id, NULL, %(now)s
    FROM led
    RETURNING id
)
SELECT unl.id, unl.expires_at, led.id, led.user_id, led.kind, led.monthly_delta,
       led.purchased_delta, led.monthly_remaining_after, led.purchased_after, led.tier_after,
       led.actor, led.actor_user_id, led.reason, led.source, led.idempotency_key, led.details,
       led.created_at
FROM unl, led, act
"""


def unlock_in_one_statement(
    *,
    user_id: int,
    component: str,
    cost: int,
    tiers: list[str],
    durations: dict[str, int],
    descriptions: dict[str, str],
    reason: str,
    title: str,
    now: datetime,
) -> tuple[ComponentUnlock, LedgerEntry] | None:
    """Unlock ``component``: charge, the unlock row, its ledger row and its activity in one
    statement; None when the locked path must decide (short of credits, a tier below
    ``tiers``, something fell due). IntegrityError: an open unlock exists (the unique index),
    the statement changed nothing."""
    with prepared_cursor(connection) as cursor:
        cursor.execute(
            _UNLOCK_SQL,
            {
                "user_id": user_id,
                "component": component,
                "cost": cost,
                "tiers": tiers,
                "durations": json.dumps(durations),
                "descriptions": json.dumps(descriptions),
                "now": now,
                "past_due": SubscriptionStatus.PAST_DUE.value,
                "kind": LedgerKind.UNLOCK.value,
                "actor": Actor.USER.value,
                "reason": reason[:500],
                "title": title[:200],
                "activity_type": ActivityType.RESEARCH_UNLOCKED.value,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    unlock_id, expires_at, *values = row
    details_index = _FIELDS.index("details")
    if isinstance(values[details_index], str):
        values[details_index] = json.loads(values[details_index])
    entry = LedgerEntry.from_db(connection.alias, _FIELDS, values)
    unlock = ComponentUnlock(
        id=unlock_id,
        user_id=user_id,
        component=component,
        tier=entry.tier_after,
        cost=cost,
        unlocked_at=now,
        expires_at=expires_at,
        expiry_recorded=False,
    )
    unlock._state.adding = False
    return unlock, entry
