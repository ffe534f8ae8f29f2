"""Credits in and out from outside: purchases, refund claw-backs, staff adjustments."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from activities.models import ActivityType, Actor, LedgerEntry, LedgerKind
from activities.services import activity_record
from subscriptions.errors import (
    InsufficientCredits,
    InvalidAmount,
    SelfAdjustmentRefused,
)
from subscriptions.services.core import (
    apply_change,
    first_after_race,
    lock_account,
    recorded_entry,
    tier_allowance,
)


def credits_purchase_add(
    *,
    user: User,
    credits: int,
    idempotency_key: str,
    source: str = "",
    reason: str = "Credits purchased",
    actor: Actor = Actor.STRIPE,
    **details: str | int,
) -> LedgerEntry:
    """Add purchased credits (they never expire), once per ``idempotency_key``.

    Extra keyword ``details`` (e.g. the payment it came from) are kept on the ledger row.
    """
    if credits <= 0:
        raise InvalidAmount("credits must be positive", credits=credits)
    # Before the lock as well as under it: a replay (the success page and the webhook apply
    # one Checkout) must not take the account before the purchase row, which the clawback's
    # settlement locks first (credits_clawback_settle, below): a deadlock otherwise.
    if (existing := recorded_entry(idempotency_key)) is not None:
        return existing
    try:
        with transaction.atomic():
            account = lock_account(user.pk)
            if (existing := recorded_entry(idempotency_key)) is not None:
                return existing
            entry = apply_change(
                account,
                kind=LedgerKind.PURCHASE,
                actor=actor,
                idempotency_key=idempotency_key,
                purchased_delta=credits,
                reason=reason,
                source=source,
                details={"credits": credits, **details},
            )
            activity_record(
                user=user,
                activity_type=ActivityType.CREDITS_PURCHASED,
                title=f"{credits} credits added",
                description=reason,
                ledger_entry=entry,
            )
    except IntegrityError as exc:
        return first_after_race(idempotency_key, exc)
    return entry


def credits_clawback(
    *,
    user: User,
    credits: int,
    idempotency_key: str,
    source: str = "",
    reason: str = "Refund",
) -> LedgerEntry:
    """Take back refunded or disputed purchased credits, as far as they are unspent.

    What was already spent cannot be taken: the shortfall is written in the ledger row's
    details, and the balance never goes negative.
    """
    if credits <= 0:
        raise InvalidAmount("credits must be positive", credits=credits)
    if (existing := recorded_entry(idempotency_key)) is not None:
        return existing
    with transaction.atomic():
        account = lock_account(user.pk)
        if (existing := recorded_entry(idempotency_key)) is not None:
            return existing
        taken = min(credits, account.purchased_balance)
        entry = apply_change(
            account,
            kind=LedgerKind.CLAWBACK,
            actor=Actor.STRIPE,
            idempotency_key=idempotency_key,
            purchased_delta=-taken,
            reason=reason,
            source=source,
            details={"requested": credits, "taken": taken, "shortfall": credits - taken},
        )
        activity_record(
            user=user,
            activity_type=ActivityType.CREDITS_CLAWED_BACK,
            title=f"{taken} credits removed",
            description=reason,
            ledger_entry=entry,
        )
    return entry


def _refuse_own_account(user: User, staff_user: User | None) -> None:
    # Separation of duties: a grant is recorded with who made it, but recording is not
    # preventing. Support staff can change any account but their own; a second staff member
    # has to do it (and is then the one on the ledger row).
    if staff_user is not None and staff_user.pk == user.pk:
        raise SelfAdjustmentRefused(user=user.pk)


def credits_clawback_settle(
    *,
    user: User,
    source: str,
    target: Callable[[], int],
    reason: str,
    restore_reason: str,
) -> LedgerEntry | None:
    """Bring what is clawed back from one purchase (``source``) to ``target()`` credits.

    ``target`` (which may ask Stripe) is asked with the purchase's own ledger row locked, so
    of two deliveries racing for one purchase the later one reads the newer state, while the
    account row, which every spend locks, is locked only afterwards. A higher target writes a
    ``CLAWBACK`` row that takes
    what is unspent (the shortfall in its details, as ``credits_clawback``); a lower one (a
    dispute won, a refund that failed) writes a ``CLAWBACK_REVERSAL`` that gives back what had
    been taken beyond the new target, never more. The key names the claim history the change
    was computed from, so a replay or a concurrent twin changes nothing.
    """
    with transaction.atomic():
        purchases = LedgerEntry.objects.select_for_update().filter(
            user_id=user.pk, kind=LedgerKind.PURCHASE, source=source
        )
        if list(purchases.values_list("pk", flat=True)):  # the purchase row is our lock
            wanted = target()
            account = lock_account(user.pk)
        else:  # nothing to lock but the account itself
            account = lock_account(user.pk)
            wanted = target()
        claimed = taken = rows = 0
        for kind, details in LedgerEntry.objects.filter(
            user_id=user.pk,
            source=source,
            kind__in=(LedgerKind.CLAWBACK, LedgerKind.CLAWBACK_REVERSAL),
        ).values_list("kind", "details"):
            rows += 1
            if kind == LedgerKind.CLAWBACK:
                claimed += details.get("requested", 0)
                taken += details.get("taken", 0)
            else:
                claimed -= details.get("released", 0)
                taken -= details.get("given", 0)
        if wanted == claimed:
            return None
        idempotency_key = f"clawback:{source}:{rows}:{claimed}->{wanted}"
        if (existing := recorded_entry(idempotency_key)) is not None:
            return existing
        if wanted > claimed:
            requested = wanted - claimed
            take = min(requested, account.purchased_balance)
            entry = apply_change(
                account,
                kind=LedgerKind.CLAWBACK,
                actor=Actor.STRIPE,
                idempotency_key=idempotency_key,
                purchased_delta=-take,
                reason=reason,
                source=source,
                details={"requested": requested, "taken": take, "shortfall": requested - take},
            )
            activity_record(
                user=user,
                activity_type=ActivityType.CREDITS_CLAWED_BACK,
                title=f"{take} credits removed",
                description=reason,
                ledger_entry=entry,
            )
            return entry
        released = claimed - wanted
        give = max(0, taken - max(wanted, 0))
        entry = apply_change(
            account,
            kind=LedgerKind.CLAWBACK_REVERSAL,
            actor=Actor.STRIPE,
            idempotency_key=idempotency_key,
            purchased_delta=give,
            reason=restore_reason,
            source=source,
            details={"released": released, "given": give},
        )
        activity_record(
            user=user,
            activity_type=ActivityType.CREDITS_RESTORED,
            title=f"{give} credits restored",
            description=restore_reason,
            ledger_entry=entry,
        )
        return entry


def credits_adjust(
    *,
    user: User,
    amount: int,
    reason: str,
    staff_user: User | None,
    idempotency_key: str,
) -> LedgerEntry:
    """Support grants (positive, as never-expiring credits) or removes (negative) credits.

    A removal takes purchased credits first, then this month's allowance; it cannot take more
    than the account holds.
    """
    if amount == 0 or abs(amount) > 1_000_000:
        raise InvalidAmount("amount must be non-zero and at most 1,000,000", amount=amount)
    if not reason.strip():
        raise InvalidAmount("a reason is required")
    _refuse_own_account(user, staff_user)
    with transaction.atomic():
        account = lock_account(user.pk)
        if (existing := recorded_entry(idempotency_key)) is not None:
            return existing
        if amount > 0:
            used_delta, purchased_delta = 0, amount
        else:
            from_purchased = min(-amount, account.purchased_balance)
            from_monthly = -amount - from_purchased
            if from_monthly > account.monthly_remaining:
                raise InsufficientCredits(
                    "Cannot remove more credits than the account holds",
                    required=-amount,
                    remaining=account.remaining,
                )
            used_delta, purchased_delta = from_monthly, -from_purchased
        entry = apply_change(
            account,
            kind=LedgerKind.ADJUSTMENT,
            actor=Actor.STAFF if staff_user is not None else Actor.SYSTEM,
            actor_user=staff_user,
            idempotency_key=idempotency_key,
            used_delta=used_delta,
            purchased_delta=purchased_delta,
            reason=reason,
            details={"amount": amount},
        )
        activity_record(
            user=user,
            activity_type=ActivityType.CREDITS_ADJUSTED,
            title=f"{amount:+d} credits by support",
            description=reason,
            ledger_entry=entry,
        )
    return entry


def allowance_override_set(
    *,
    user: User,
    allowance: int | None,
    reason: str,
    staff_user: User | None,
    idempotency_key: str,
) -> LedgerEntry:
    """Size an institutional customer's monthly allowance (None: back to the tier default)."""
    if allowance is not None and not 0 <= allowance <= 10_000_000:
        raise InvalidAmount("allowance must be between 0 and 10,000,000", allowance=allowance)
    if not reason.strip():
        raise InvalidAmount("a reason is required")
    _refuse_own_account(user, staff_user)
    with transaction.atomic():
        account = lock_account(user.pk)
        if (existing := recorded_entry(idempotency_key)) is not None:
            return existing
        account.custom_allowance = allowance
        new_allowance = tier_allowance(account=account, tier=account.tier)
        return apply_change(
            account,
            kind=LedgerKind.ALLOWANCE_CHANGE,
            actor=Actor.STAFF if staff_user is not None else Actor.SYSTEM,
            actor_user=staff_user,
            idempotency_key=idempotency_key,
            allowance=new_allowance,
            # Usage already counted stays counted, but cannot exceed a smaller allowance.
            used=min(account.monthly_used, new_allowance),
            reason=reason,
            details={"custom_allowance": allowance},
            custom_allowance=allowance,
        )
