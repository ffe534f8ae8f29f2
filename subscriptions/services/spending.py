"""Spending credits: one-off spends, holds for long operations, component unlocks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from activities.models import ActivityType, Actor, LedgerEntry, LedgerKind
from activities.services import activity_record
from subscriptions import catalogue
from subscriptions.errors import (
    HoldNotFound,
    HoldNotOpen,
    IdempotencyConflict,
    InvalidAmount,
    UnknownAction,
    UnknownComponent,
    require_tier,
)
from subscriptions.models import (
    ComponentUnlock,
    CreditHold,
    HoldStatus,
)
from subscriptions.services import charge
from subscriptions.services.accounts import account_get, refresh_locked
from subscriptions.services.core import (
    apply_change,
    first_after_race,
    lock_account,
    recorded_entry,
    split_cost,
)
from subscriptions.services.holds import hold_close_locked

T = TypeVar("T")


def action_get(*, action: str, quantity: int = 1) -> catalogue.CreditAction:
    """The catalogue's action, or a 400 naming the ones that exist (and the quantity's bounds)."""
    entry = catalogue.CREDIT_ACTIONS.get(action)
    if entry is None:
        raise UnknownAction(action=action, available=sorted(catalogue.CREDIT_ACTIONS))
    if not 1 <= quantity <= catalogue.MAX_ACTION_QUANTITY:
        raise InvalidAmount(
            f"quantity must be between 1 and {catalogue.MAX_ACTION_QUANTITY}", quantity=quantity
        )
    return entry


def action_cost(*, action: str, quantity: int = 1, tier: str = "free") -> int:
    """The server's price of an action in credits for ``tier``; the client never names a cost."""
    entry = action_get(action=action, quantity=quantity)
    return entry.unit_cost(catalogue.TIERS[tier]) * quantity


@dataclass(frozen=True)
class SpendResult:
    entry: LedgerEntry
    replayed: bool


def _check_replay(entry: LedgerEntry, *, action: str, quantity: int) -> SpendResult:
    if entry.details.get("action") != action or entry.details.get("quantity") != quantity:
        raise IdempotencyConflict()
    return SpendResult(entry=entry, replayed=True)


def credits_spend(
    *,
    user: User,
    action: str,
    quantity: int,
    idempotency_key: str,
    now: datetime | None = None,
) -> SpendResult:
    """Charge ``action`` x ``quantity``: the monthly allowance first, then purchased credits.

    A retry with the same client key returns the first answer (keys never expire); the same
    key for a different request is a conflict.
    """
    action_get(action=action, quantity=quantity)
    key = f"spend:{user.pk}:{idempotency_key}"
    now = now or timezone.now()
    if charge.available():
        # PostgreSQL: one statement locks, checks, charges and writes the ledger row (a replay
        # fails its INSERT on the unique key); None: the locked path below decides. The price
        # depends on the tier (its discount): priced for the tier read now (the JWT lookup has
        # the account already), and the statement charges only an account still on it.
        account = getattr(user, "credit_account", None) or account_get(user=user)
        tier = account.tier
        cost = action_cost(action=action, quantity=quantity, tier=tier)
        try:
            entry = _in_savepoint_if_nested(
                lambda: charge.charge_in_one_statement(
                    user_id=user.pk,
                    tier=tier,
                    cost=cost,
                    kind=LedgerKind.SPEND,
                    idempotency_key=key,
                    reason=catalogue.CREDIT_ACTIONS[action].name,
                    source=idempotency_key,
                    details={"action": action, "quantity": quantity, "cost": cost},
                    now=now,
                )
            )
        except IntegrityError as exc:
            return _check_replay(first_after_race(key, exc), action=action, quantity=quantity)
        if entry is not None:
            entry.user = user
            return SpendResult(entry=entry, replayed=False)
    if (existing := recorded_entry(key)) is not None:
        return _check_replay(existing, action=action, quantity=quantity)
    try:
        with transaction.atomic():
            account = lock_account(user.pk)
            if (existing := recorded_entry(key)) is not None:
                return _check_replay(existing, action=action, quantity=quantity)
            refresh_locked(account, now)
            # Priced under the lock: the tier (and so its discount) cannot change meanwhile.
            cost = action_cost(action=action, quantity=quantity, tier=account.tier)
            from_monthly, from_purchased = split_cost(account, cost)
            entry = apply_change(
                account,
                kind=LedgerKind.SPEND,
                actor=Actor.USER,
                idempotency_key=key,
                used_delta=from_monthly,
                purchased_delta=-from_purchased,
                reason=catalogue.CREDIT_ACTIONS[action].name,
                source=idempotency_key,
                details={"action": action, "quantity": quantity, "cost": cost},
            )
    except IntegrityError as exc:
        return _check_replay(first_after_race(key, exc), action=action, quantity=quantity)
    return SpendResult(entry=entry, replayed=False)


def _in_savepoint_if_nested(run: Callable[[], T]) -> T:
    """Run one statement: alone it is its own transaction (no BEGIN/COMMIT round trips); in
    a caller's transaction, in a savepoint, so a failed INSERT does not poison it."""
    if connection.in_atomic_block:
        with transaction.atomic():
            return run()
    return run()


def credits_hold_create(
    *,
    user: User,
    action: str,
    quantity: int,
    idempotency_key: str,
    now: datetime | None = None,
) -> CreditHold:
    """Reserve credits for a long operation; they count as spent until released or expired."""
    action_get(action=action, quantity=quantity)
    key = f"hold:{user.pk}:{idempotency_key}"
    now = now or timezone.now()
    with transaction.atomic():
        account = lock_account(user.pk)
        if (existing := recorded_entry(key)) is not None:
            _check_replay(existing, action=action, quantity=quantity)
            return CreditHold.objects.get(pk=existing.details["hold_id"])
        refresh_locked(account, now)
        cost = action_cost(action=action, quantity=quantity, tier=account.tier)
        from_monthly, from_purchased = split_cost(account, cost)
        expires_at = now + timedelta(minutes=settings.CREDIT_HOLD_MINUTES)
        hold = CreditHold.objects.create(
            user=user,
            action=action,
            quantity=quantity,
            monthly_amount=from_monthly,
            purchased_amount=from_purchased,
            period_start=account.period_start,
            expires_at=expires_at,
        )
        next_expiry = min(filter(None, [account.next_hold_expiry_at, expires_at]))
        apply_change(
            account,
            kind=LedgerKind.HOLD,
            actor=Actor.USER,
            idempotency_key=key,
            used_delta=from_monthly,
            purchased_delta=-from_purchased,
            reason=f"Hold for {catalogue.CREDIT_ACTIONS[action].name}",
            source=f"hold:{hold.pk}",
            details={"action": action, "quantity": quantity, "cost": cost, "hold_id": hold.pk},
            next_hold_expiry_at=next_expiry,
        )
    return hold


def credits_hold_capture(*, user: User, hold_id: int, now: datetime | None = None) -> CreditHold:
    """The operation finished: the held credits are spent for good."""
    return _hold_resolve(user=user, hold_id=hold_id, capture=True, now=now)


def credits_hold_release(*, user: User, hold_id: int, now: datetime | None = None) -> CreditHold:
    """The operation was abandoned: the held credits go back where they came from."""
    return _hold_resolve(user=user, hold_id=hold_id, capture=False, now=now)


def _hold_resolve(*, user: User, hold_id: int, capture: bool, now: datetime | None) -> CreditHold:
    now = now or timezone.now()
    with transaction.atomic():
        account = lock_account(user.pk)
        refresh_locked(account, now)  # may expire this very hold
        try:
            hold = CreditHold.objects.get(pk=hold_id, user=user)
        except CreditHold.DoesNotExist:
            raise HoldNotFound(hold_id=hold_id) from None
        wanted = HoldStatus.CAPTURED if capture else HoldStatus.RELEASED
        if hold.status == wanted:
            return hold  # a retried capture/release answers the same
        if hold.status != HoldStatus.OPEN:
            raise HoldNotOpen(hold_id=hold_id, status=hold.status)
        hold_close_locked(account, hold, status=wanted, now=now)
    return hold


@dataclass(frozen=True)
class UnlockResult:
    unlock: ComponentUnlock
    charged: bool
    entry: LedgerEntry | None


def component_unlock(*, user: User, component: str, now: datetime | None = None) -> UnlockResult:
    """Buy time-limited access to a research component; an active unlock is never re-charged.

    Two devices unlocking at once both wait for the account's row lock; the second one finds
    the first one's unlock and is not charged.
    """
    entry_spec = catalogue.COMPONENTS.get(component)
    if entry_spec is None:
        raise UnknownComponent(component=component, available=sorted(catalogue.COMPONENTS))
    now = now or timezone.now()
    if charge.available():
        # PostgreSQL: the active unlock by index (no lock); else one statement charges and
        # writes the unlock, ledger and activity rows. A racing unlock of the same component
        # loses on the unique index (nothing changed): the locked path then finds the winner.
        active = (
            ComponentUnlock.objects.filter(user=user, component=component, expires_at__gt=now)
            .order_by("-expires_at")
            .first()
        )
        if active is not None:
            return UnlockResult(unlock=active, charged=False, entry=None)
        try:
            done = _in_savepoint_if_nested(
                lambda: charge.unlock_in_one_statement(
                    user_id=user.pk,
                    component=component,
                    cost=entry_spec.cost,
                    tiers=catalogue.tiers_allowing(entry_spec),
                    durations={
                        key: int(tier.unlock_duration.total_seconds())
                        for key, tier in catalogue.TIERS.items()
                    },
                    descriptions={
                        key: _unlocked_description(entry_spec.cost, tier.unlock_duration)
                        for key, tier in catalogue.TIERS.items()
                    },
                    reason=f"Unlocked {entry_spec.name}",
                    title=f"{entry_spec.name} unlocked",
                    now=now,
                )
            )
        except IntegrityError:
            done = None
        if done is not None:
            unlock, entry = done
            unlock.user = entry.user = user
            return UnlockResult(unlock=unlock, charged=True, entry=entry)
    with transaction.atomic():
        account = lock_account(user.pk)
        refresh_locked(account, now)
        active = (
            ComponentUnlock.objects.filter(user=user, component=component, expires_at__gt=now)
            .order_by("-expires_at")
            .first()
        )
        if active is not None:
            return UnlockResult(unlock=active, charged=False, entry=None)
        tier = catalogue.TIERS[account.tier]
        require_tier(tier, entry_spec)
        from_monthly, from_purchased = split_cost(account, entry_spec.cost)
        # The one open unlock allowed per component (a unique index) may be an ended one
        # the sweep has not closed yet: close it, with its activity, before the new one.
        for ended in ComponentUnlock.objects.filter(
            user=user, component=component, expiry_recorded=False, expires_at__lte=now
        ).select_related("user"):
            _unlock_expiry_record(ended)
        unlock = ComponentUnlock.objects.create(
            user=user,
            component=component,
            tier=account.tier,
            cost=entry_spec.cost,
            unlocked_at=now,
            expires_at=now + tier.unlock_duration,
        )
        entry = apply_change(
            account,
            kind=LedgerKind.UNLOCK,
            actor=Actor.USER,
            idempotency_key=f"unlock:{unlock.pk}",
            used_delta=from_monthly,
            purchased_delta=-from_purchased,
            reason=f"Unlocked {entry_spec.name}",
            source=f"unlock:{unlock.pk}",
            details={"component": component, "cost": entry_spec.cost, "unlock_id": unlock.pk},
        )
        activity_record(
            user=user,
            activity_type=ActivityType.RESEARCH_UNLOCKED,
            title=f"{entry_spec.name} unlocked",
            description=_unlocked_description(entry_spec.cost, tier.unlock_duration),
            ledger_entry=entry,
        )
    return UnlockResult(unlock=unlock, charged=True, entry=entry)


def _unlocked_description(cost: int, duration: timedelta) -> str:
    return f"{cost} credits, access for {_duration(duration)}."


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes >= 60 else f"{minutes} min"


def unlocks_record_expired(*, user_id: int | None = None, now: datetime | None = None) -> int:
    """Leave one ``research_expired`` activity per ended unlock. Safe to run concurrently."""
    now = now or timezone.now()
    due = ComponentUnlock.objects.filter(expiry_recorded=False, expires_at__lte=now)
    if user_id is not None:
        due = due.filter(user_id=user_id)
    recorded = 0
    for unlock in due.select_related("user").order_by("pk")[:1000]:
        with transaction.atomic():
            recorded += _unlock_expiry_record(unlock)
    return recorded


def _unlock_expiry_record(unlock: ComponentUnlock) -> int:
    """Close an ended unlock with its ``research_expired`` activity; 1 if this call did it."""
    # The conditional update is the claim: only one worker gets rowcount 1.
    claimed = ComponentUnlock.objects.filter(pk=unlock.pk, expiry_recorded=False).update(
        expiry_recorded=True
    )
    if not claimed:
        return 0
    spec = catalogue.COMPONENTS.get(unlock.component)
    activity_record(
        user=unlock.user,
        activity_type=ActivityType.RESEARCH_EXPIRED,
        title=f"{spec.name if spec else unlock.component} access expired",
        description="Unlock it again to keep researching.",
        dedupe_key=f"research-expired:{unlock.pk}",
    )
    return 1
