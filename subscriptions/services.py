"""The rules that change tiers and credits. The only writers of ``CreditAccount``.

Every public service here runs in ``transaction.atomic()``, takes the account's row lock
(``select_for_update``) before reading a balance, writes exactly one ledger row per change,
and is idempotent by the ledger's UNIQUE ``idempotency_key``: a repeated key returns the first
row and changes nothing. PostgreSQL's row lock is the arbiter between concurrent requests, on
any number of processes and machines; CHECK constraints are the last line against overdraft.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from activities.models import ActivityType, Actor, LedgerEntry, LedgerKind
from activities.services import activity_record, ledger_append
from subscriptions import catalogue
from subscriptions.errors import (
    HoldNotFound,
    HoldNotOpen,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidAmount,
    TierRequired,
    UnknownAction,
    UnknownComponent,
)
from subscriptions.models import (
    BillingInterval,
    ComponentUnlock,
    CreditAccount,
    CreditHold,
    HoldStatus,
    SubscriptionStatus,
    Tier,
)
from subscriptions.periods import add_months, monthly_period_containing

logger = logging.getLogger(__name__)

# Statuses in which Stripe still considers the subscription alive (past_due: in dunning).
LIVE_STATUSES = {
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.PAST_DUE,
}
ENDED_STATUSES = {
    SubscriptionStatus.CANCELED,
    SubscriptionStatus.UNPAID,
    SubscriptionStatus.INCOMPLETE_EXPIRED,
}
MAX_IDEMPOTENCY_KEY_LENGTH = 100


# --------------------------------------------------------------------------------------------
# The core: lock, check, ledger row, update.


def tier_allowance(*, account: CreditAccount, tier: str) -> int:
    """The monthly credits ``tier`` grants this account (staff may size institutional)."""
    if tier == Tier.INSTITUTIONAL and account.custom_allowance is not None:
        return account.custom_allowance
    return catalogue.TIERS[tier].monthly_credits


def _lock(user_id: int) -> CreditAccount:
    return CreditAccount.objects.select_for_update().get(user_id=user_id)


def _recorded(idempotency_key: str) -> LedgerEntry | None:
    return LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()


def _apply(
    account: CreditAccount,
    *,
    kind: LedgerKind,
    actor: Actor,
    idempotency_key: str,
    used_delta: int = 0,
    purchased_delta: int = 0,
    allowance: int | None = None,
    used: int | None = None,
    reason: str = "",
    source: str = "",
    actor_user: AbstractBaseUser | None = None,
    details: dict[str, Any] | None = None,
    **fields: Any,
) -> LedgerEntry:
    """Change a locked account and append the ledger row that explains it.

    ``used_delta``/``purchased_delta`` move the buckets; ``allowance``/``used`` set them (a
    reset or a tier change). Other keyword ``fields`` are plain account fields to set.
    """
    new_allowance = account.monthly_allowance if allowance is None else allowance
    new_used = (account.monthly_used if used is None else used) + used_delta
    new_purchased = account.purchased_balance + purchased_delta
    monthly_delta = (new_allowance - new_used) - account.monthly_remaining
    for name, value in fields.items():
        setattr(account, name, value)
    entry = ledger_append(
        user=account.user,
        kind=kind,
        monthly_delta=monthly_delta,
        purchased_delta=purchased_delta,
        monthly_remaining_after=new_allowance - new_used,
        purchased_after=new_purchased,
        tier_after=account.tier,
        actor=actor,
        actor_user=actor_user,
        reason=reason,
        source=source,
        idempotency_key=idempotency_key,
        details=details,
    )
    # The row is locked, so these values are exact; F() keeps the UPDATE honest regardless,
    # and the CHECK constraints refuse anything that would go negative.
    update = {name: getattr(account, name) for name in fields}
    update.update(
        monthly_allowance=new_allowance,
        monthly_used=new_used if used is not None else F("monthly_used") + used_delta,
        purchased_balance=F("purchased_balance") + purchased_delta,
        version=F("version") + 1,
        updated_at=timezone.now(),
    )
    CreditAccount.objects.filter(pk=account.pk).update(**update)
    account.monthly_allowance = new_allowance
    account.monthly_used = new_used
    account.purchased_balance = new_purchased
    account.version += 1
    return entry


def _split_cost(account: CreditAccount, cost: int) -> tuple[int, int]:
    """How much of ``cost`` comes from the monthly allowance and how much from purchases."""
    from_monthly = min(cost, account.monthly_remaining)
    from_purchased = cost - from_monthly
    if from_purchased > account.purchased_balance:
        raise InsufficientCredits(required=cost, remaining=account.remaining)
    return from_monthly, from_purchased


def _first_after_race(idempotency_key: str, exc: IntegrityError) -> LedgerEntry:
    """After a unique-key race on the ledger, the winner's row is the answer."""
    entry = _recorded(idempotency_key)
    if entry is None:
        raise exc
    return entry


# --------------------------------------------------------------------------------------------
# Accounts and periods.


def account_create(*, user: AbstractBaseUser, now: datetime | None = None) -> CreditAccount:
    """Open the free credit account that every user has from sign-up."""
    now = now or timezone.now()
    account, _ = CreditAccount.objects.get_or_create(
        user=user,
        defaults=dict(
            tier=Tier.FREE,
            monthly_allowance=catalogue.FREE_TIER.monthly_credits,
            period_start=now,
            period_end=add_months(now, 1),
            period_anchor=now,
        ),
    )
    return account


def account_get(*, user: AbstractBaseUser, now: datetime | None = None) -> CreditAccount:
    """The user's account, brought up to date (period roll, expired holds, ended grace)."""
    try:
        account = user.credit_account  # type: ignore[attr-defined]
    except CreditAccount.DoesNotExist:
        account = account_create(user=user, now=now)
    return account_refresh(account=account, now=now)


def _refresh_due(account: CreditAccount, now: datetime) -> bool:
    if account.next_hold_expiry_at is not None and account.next_hold_expiry_at <= now:
        return True
    if (
        account.subscription_status == SubscriptionStatus.PAST_DUE
        and account.grace_until is not None
        and account.grace_until <= now
    ):
        return True
    return account.period_end <= now and _rolls_by_itself(account)


def _rolls_by_itself(account: CreditAccount) -> bool:
    """Free accounts and yearly plans renew their monthly allowance without a Stripe invoice."""
    if account.tier == Tier.FREE:
        return True
    return (
        account.billing_interval == BillingInterval.YEAR
        and account.billing_period_end is not None
        and account.period_end < account.billing_period_end
    )


def account_refresh(*, account: CreditAccount, now: datetime | None = None) -> CreditAccount:
    """Bring an account read after its period ended (or a hold expired) up to date, atomically.

    Costs no query when nothing is due, which is almost every read.
    """
    now = now or timezone.now()
    if not _refresh_due(account, now):
        return account
    with transaction.atomic():
        locked = _lock(account.user_id)
        _refresh_locked(locked, now)
    return locked


def _refresh_locked(account: CreditAccount, now: datetime) -> None:
    if account.next_hold_expiry_at is not None and account.next_hold_expiry_at <= now:
        _expire_holds_locked(account, now)
    if (
        account.subscription_status == SubscriptionStatus.PAST_DUE
        and account.grace_until is not None
        and account.grace_until <= now
    ):
        _fall_to_free(
            account,
            now=now,
            status=SubscriptionStatus.PAST_DUE,
            idempotency_key=f"grace-ended:{account.user_id}:{account.grace_until.isoformat()}",
            reason="Payment grace period ended",
            source=account.stripe_subscription_id,
        )
    if account.period_end <= now and _rolls_by_itself(account):
        start, end = monthly_period_containing(account.period_anchor, now)
        if account.billing_period_end is not None and account.tier != Tier.FREE:
            end = min(end, account.billing_period_end)
        _reset_locked(
            account,
            period_start=start,
            period_end=end,
            idempotency_key=f"period:{account.user_id}:{start.isoformat()}",
            actor=Actor.SYSTEM,
            source="",
            reason="Monthly allowance renewed",
        )


def _reset_locked(
    account: CreditAccount,
    *,
    period_start: datetime,
    period_end: datetime,
    idempotency_key: str,
    actor: Actor,
    source: str,
    reason: str,
    **fields: Any,
) -> LedgerEntry:
    existing = _recorded(idempotency_key)
    if existing is not None:
        return existing
    tier = account.pending_tier or account.tier
    fields.setdefault("tier", tier)
    account.tier = tier
    entry = _apply(
        account,
        kind=LedgerKind.PERIOD_RESET,
        actor=actor,
        idempotency_key=idempotency_key,
        allowance=tier_allowance(account=account, tier=tier),
        used=0,
        reason=reason,
        source=source,
        details={"period_start": period_start.isoformat(), "period_end": period_end.isoformat()},
        pending_tier="",
        period_start=period_start,
        period_end=period_end,
        **fields,
    )
    if entry.monthly_remaining_after:
        activity_record(
            user=account.user,
            activity_type=ActivityType.ALLOWANCE_RESET,
            title=f"{entry.monthly_remaining_after} monthly credits renewed",
            description=f"Your {catalogue.TIERS[tier].name} allowance was renewed.",
            ledger_entry=entry,
        )
    return entry


def allowances_grant_due(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Renew every free or yearly account whose monthly period has ended. Safe to run often."""
    now = now or timezone.now()
    renewed = 0
    due = CreditAccount.objects.filter(
        Q(period_end__lte=now)
        | Q(next_hold_expiry_at__lte=now)
        | Q(subscription_status=SubscriptionStatus.PAST_DUE, grace_until__lte=now)
    ).order_by("pk")
    last_pk = 0
    while True:
        batch = list(due.filter(pk__gt=last_pk)[:batch_size])
        if not batch:
            return renewed
        for account in batch:
            last_pk = account.pk
            if _refresh_due(account, now):
                before = account.version
                refreshed = account_refresh(account=account, now=now)
                renewed += refreshed.version != before


def allowance_period_start(
    *,
    user: AbstractBaseUser,
    period_start: datetime,
    period_end: datetime,
    interval: str,
    idempotency_key: str,
    source: str = "",
) -> LedgerEntry | None:
    """A paid period began (Stripe's renewal or first invoice was paid): reset the allowance.

    A yearly period gets its first monthly allowance now and the rest from the monthly roll.
    An invoice for a period older than the current one (a late delivery) changes nothing.
    """
    existing = _recorded(idempotency_key)
    if existing is not None:
        return existing
    with transaction.atomic():
        account = _lock(user.pk)
        if (existing := _recorded(idempotency_key)) is not None:
            return existing
        if account.billing_period_end is not None and period_end < account.billing_period_end:
            logger.info("ignoring paid invoice for an older period (%s)", idempotency_key)
            return None
        allowance_end = add_months(period_start, 1) if interval == BillingInterval.YEAR else None
        return _reset_locked(
            account,
            period_start=period_start,
            period_end=min(allowance_end, period_end) if allowance_end else period_end,
            idempotency_key=idempotency_key,
            actor=Actor.STRIPE,
            source=source,
            reason="Paid period started",
            period_anchor=period_start,
            billing_period_end=period_end,
            billing_interval=interval,
        )


# --------------------------------------------------------------------------------------------
# Spending, holds and unlocks.


def action_cost(*, action: str, quantity: int = 1) -> int:
    """The server's price of an action in credits; the client never names a cost."""
    entry = catalogue.CREDIT_ACTIONS.get(action)
    if entry is None:
        raise UnknownAction(action=action, available=sorted(catalogue.CREDIT_ACTIONS))
    if not 1 <= quantity <= catalogue.MAX_ACTION_QUANTITY:
        raise InvalidAmount(
            f"quantity must be between 1 and {catalogue.MAX_ACTION_QUANTITY}", quantity=quantity
        )
    return entry.cost * quantity


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
    user: AbstractBaseUser,
    action: str,
    quantity: int,
    idempotency_key: str,
    now: datetime | None = None,
) -> SpendResult:
    """Charge ``action`` x ``quantity``: the monthly allowance first, then purchased credits.

    A retry with the same client key returns the first answer (keys never expire); the same
    key for a different request is a conflict.
    """
    cost = action_cost(action=action, quantity=quantity)
    key = f"spend:{user.pk}:{idempotency_key}"
    if (existing := _recorded(key)) is not None:
        return _check_replay(existing, action=action, quantity=quantity)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            account = _lock(user.pk)
            if (existing := _recorded(key)) is not None:
                return _check_replay(existing, action=action, quantity=quantity)
            _refresh_locked(account, now)
            from_monthly, from_purchased = _split_cost(account, cost)
            entry = _apply(
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
        return _check_replay(_first_after_race(key, exc), action=action, quantity=quantity)
    return SpendResult(entry=entry, replayed=False)


def credits_hold_create(
    *,
    user: AbstractBaseUser,
    action: str,
    quantity: int,
    idempotency_key: str,
    now: datetime | None = None,
) -> CreditHold:
    """Reserve credits for a long operation; they count as spent until released or expired."""
    cost = action_cost(action=action, quantity=quantity)
    key = f"hold:{user.pk}:{idempotency_key}"
    now = now or timezone.now()
    with transaction.atomic():
        account = _lock(user.pk)
        if (existing := _recorded(key)) is not None:
            _check_replay(existing, action=action, quantity=quantity)
            return CreditHold.objects.get(pk=existing.details["hold_id"])
        _refresh_locked(account, now)
        from_monthly, from_purchased = _split_cost(account, cost)
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
        _apply(
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


def credits_hold_capture(
    *, user: AbstractBaseUser, hold_id: int, now: datetime | None = None
) -> CreditHold:
    """The operation finished: the held credits are spent for good."""
    return _hold_resolve(user=user, hold_id=hold_id, capture=True, now=now)


def credits_hold_release(
    *, user: AbstractBaseUser, hold_id: int, now: datetime | None = None
) -> CreditHold:
    """The operation was abandoned: the held credits go back where they came from."""
    return _hold_resolve(user=user, hold_id=hold_id, capture=False, now=now)


def _hold_resolve(
    *, user: AbstractBaseUser, hold_id: int, capture: bool, now: datetime | None
) -> CreditHold:
    now = now or timezone.now()
    with transaction.atomic():
        account = _lock(user.pk)
        _refresh_locked(account, now)  # may expire this very hold
        try:
            hold = CreditHold.objects.get(pk=hold_id, user=user)
        except CreditHold.DoesNotExist:
            raise HoldNotFound(hold_id=hold_id) from None
        wanted = HoldStatus.CAPTURED if capture else HoldStatus.RELEASED
        if hold.status == wanted:
            return hold  # a retried capture/release answers the same
        if hold.status != HoldStatus.OPEN:
            raise HoldNotOpen(hold_id=hold_id, status=hold.status)
        _close_hold(account, hold, status=wanted, now=now)
    return hold


def _close_hold(account: CreditAccount, hold: CreditHold, *, status: HoldStatus, now: datetime):
    hold.status = status
    hold.resolved_at = now
    hold.save(update_fields=["status", "resolved_at"])
    returns = status != HoldStatus.CAPTURED
    # The monthly part only goes back while its period lasts: a reset already restored it.
    monthly_back = (
        hold.monthly_amount if returns and hold.period_start == account.period_start else 0
    )
    monthly_back = min(monthly_back, account.monthly_used)
    purchased_back = hold.purchased_amount if returns else 0
    _apply(
        account,
        kind=LedgerKind.HOLD_CAPTURE if status == HoldStatus.CAPTURED else LedgerKind.HOLD_RELEASE,
        actor=Actor.USER if status != HoldStatus.EXPIRED else Actor.SYSTEM,
        idempotency_key=f"hold-{status}:{hold.pk}",
        used_delta=-monthly_back,
        purchased_delta=purchased_back,
        reason=f"Hold {status}",
        source=f"hold:{hold.pk}",
        details={"hold_id": hold.pk, "action": hold.action, "quantity": hold.quantity},
        next_hold_expiry_at=_next_hold_expiry(account.user_id),
    )


def _next_hold_expiry(user_id: int) -> datetime | None:
    holds = CreditHold.objects.filter(user_id=user_id, status=HoldStatus.OPEN)
    return holds.order_by("expires_at").values_list("expires_at", flat=True).first()


def _expire_holds_locked(account: CreditAccount, now: datetime) -> None:
    due = CreditHold.objects.filter(
        user_id=account.user_id, status=HoldStatus.OPEN, expires_at__lte=now
    ).order_by("pk")
    for hold in due:
        _close_hold(account, hold, status=HoldStatus.EXPIRED, now=now)
    account.next_hold_expiry_at = _next_hold_expiry(account.user_id)
    CreditAccount.objects.filter(pk=account.pk).update(
        next_hold_expiry_at=account.next_hold_expiry_at
    )


@dataclass(frozen=True)
class UnlockResult:
    unlock: ComponentUnlock
    charged: bool
    entry: LedgerEntry | None


def component_unlock(
    *, user: AbstractBaseUser, component: str, now: datetime | None = None
) -> UnlockResult:
    """Buy time-limited access to a research component; an active unlock is never re-charged.

    Two devices unlocking at once both wait for the account's row lock; the second one finds
    the first one's unlock and is not charged.
    """
    entry_spec = catalogue.COMPONENTS.get(component)
    if entry_spec is None:
        raise UnknownComponent(component=component, available=sorted(catalogue.COMPONENTS))
    now = now or timezone.now()
    with transaction.atomic():
        account = _lock(user.pk)
        _refresh_locked(account, now)
        active = (
            ComponentUnlock.objects.filter(user=user, component=component, expires_at__gt=now)
            .order_by("-expires_at")
            .first()
        )
        if active is not None:
            return UnlockResult(unlock=active, charged=False, entry=None)
        tier = catalogue.TIERS[account.tier]
        required = catalogue.TIERS[entry_spec.min_tier]
        if tier.rank < required.rank:
            raise TierRequired(
                f"{entry_spec.name} needs the {required.name} plan or above",
                feature=component,
                tier=account.tier,
                requiredTiers=catalogue.tiers_at_or_above(required.rank),
            )
        from_monthly, from_purchased = _split_cost(account, entry_spec.cost)
        unlock = ComponentUnlock.objects.create(
            user=user,
            component=component,
            tier=account.tier,
            cost=entry_spec.cost,
            unlocked_at=now,
            expires_at=now + tier.unlock_duration,
        )
        entry = _apply(
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
            description=f"{entry_spec.cost} credits, access for {_duration(tier.unlock_duration)}.",
            ledger_entry=entry,
        )
    return UnlockResult(unlock=unlock, charged=True, entry=entry)


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
            # The conditional update is the claim: only one worker gets rowcount 1.
            claimed = ComponentUnlock.objects.filter(pk=unlock.pk, expiry_recorded=False).update(
                expiry_recorded=True
            )
            if not claimed:
                continue
            spec = catalogue.COMPONENTS.get(unlock.component)
            activity_record(
                user=unlock.user,
                activity_type=ActivityType.RESEARCH_EXPIRED,
                title=f"{spec.name if spec else unlock.component} access expired",
                description="Unlock it again to keep researching.",
                dedupe_key=f"research-expired:{unlock.pk}",
            )
            recorded += 1
    return recorded


# --------------------------------------------------------------------------------------------
# Purchases, claw-backs and staff adjustments.


def credits_purchase_add(
    *,
    user: AbstractBaseUser,
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
    if (existing := _recorded(idempotency_key)) is not None:
        return existing
    try:
        with transaction.atomic():
            account = _lock(user.pk)
            if (existing := _recorded(idempotency_key)) is not None:
                return existing
            entry = _apply(
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
        return _first_after_race(idempotency_key, exc)
    return entry


def credits_clawback(
    *,
    user: AbstractBaseUser,
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
    if (existing := _recorded(idempotency_key)) is not None:
        return existing
    with transaction.atomic():
        account = _lock(user.pk)
        if (existing := _recorded(idempotency_key)) is not None:
            return existing
        taken = min(credits, account.purchased_balance)
        entry = _apply(
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


def credits_adjust(
    *,
    user: AbstractBaseUser,
    amount: int,
    reason: str,
    staff_user: AbstractBaseUser | None,
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
    with transaction.atomic():
        account = _lock(user.pk)
        if (existing := _recorded(idempotency_key)) is not None:
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
        entry = _apply(
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
    user: AbstractBaseUser,
    allowance: int | None,
    reason: str,
    staff_user: AbstractBaseUser | None,
    idempotency_key: str,
) -> LedgerEntry:
    """Size an institutional customer's monthly allowance (None: back to the tier default)."""
    if allowance is not None and not 0 <= allowance <= 10_000_000:
        raise InvalidAmount("allowance must be between 0 and 10,000,000", allowance=allowance)
    if not reason.strip():
        raise InvalidAmount("a reason is required")
    with transaction.atomic():
        account = _lock(user.pk)
        if (existing := _recorded(idempotency_key)) is not None:
            return existing
        account.custom_allowance = allowance
        new_allowance = tier_allowance(account=account, tier=account.tier)
        return _apply(
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


# --------------------------------------------------------------------------------------------
# Tiers: what Stripe's subscription state means for the account.


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as the billing app read it from Stripe, in plain values."""

    subscription_id: str
    status: str
    tier: str | None  # None: the price is not in the catalogue
    price_lookup_key: str
    interval: str
    period_start: datetime
    period_end: datetime
    cancel_at_period_end: bool
    observed_at: datetime  # Stripe's time for this state (the event's ``created``)


def subscription_sync(
    *, user: AbstractBaseUser, state: SubscriptionState, idempotency_key: str, source: str = ""
) -> LedgerEntry | None:
    """Apply Stripe's view of a subscription to the account's tier and allowance.

    - An upgrade takes effect now: the allowance rises to the new tier's; usage already
      counted in the period stays counted (remaining grows by the difference).
    - A downgrade waits for the end of the paid period (``pending_tier``).
    - ``past_due`` keeps the tier for the grace period; ended subscriptions fall to free.
    - An unknown price never downgrades: the tier is kept and the problem flagged for staff.
    - State older than what was applied, or about a subscription that was replaced, is ignored.
    Returns the ledger row, or None when nothing changed.
    """
    if (existing := _recorded(idempotency_key)) is not None:
        return existing
    with transaction.atomic():
        account = _lock(user.pk)
        if (existing := _recorded(idempotency_key)) is not None:
            return existing
        return _subscription_sync_locked(account, state, idempotency_key, source)


def _subscription_sync_locked(
    account: CreditAccount, state: SubscriptionState, key: str, source: str
) -> LedgerEntry | None:
    status = SubscriptionStatus(state.status)
    current_sub = account.stripe_subscription_id
    if current_sub and current_sub != state.subscription_id:
        if status not in LIVE_STATUSES:
            return None  # an old subscription ending says nothing about the current one
    elif account.stripe_state_at is not None and state.observed_at < account.stripe_state_at:
        return None  # a late delivery of an older state
    common = dict(
        stripe_state_at=state.observed_at,
        stripe_subscription_id=state.subscription_id,
        subscription_status=status,
        cancel_at_period_end=state.cancel_at_period_end,
    )
    if status in ENDED_STATUSES:
        if account.tier == Tier.FREE and account.subscription_status == status:
            return None
        return _fall_to_free(
            account,
            now=state.observed_at,
            status=status,
            idempotency_key=key,
            reason=f"Subscription {status.label.lower()}",
            source=source or state.subscription_id,
            stripe_state_at=state.observed_at,
        )
    if (
        status == SubscriptionStatus.PAST_DUE
        and account.subscription_status == SubscriptionStatus.UNPAID
        and current_sub == state.subscription_id
    ):
        return None  # the grace period already ran out here; only a paid invoice restores it
    if status not in LIVE_STATUSES:
        # incomplete / paused: nothing is paid for yet; remember the state only.
        CreditAccount.objects.filter(pk=account.pk).update(version=F("version") + 1, **common)
        return None
    fields: dict[str, Any] = dict(common, billing_interval=state.interval)
    if state.tier is None:
        problem = f"Unknown Stripe price {state.price_lookup_key or '(no lookup key)'}"
        logger.error("%s on subscription %s; tier kept", problem, state.subscription_id)
        fields["billing_problem"] = problem[:255]
        new_tier = account.tier
    else:
        fields["billing_problem"] = ""
        fields["stripe_price_lookup_key"] = state.price_lookup_key
        new_tier = state.tier
    if status == SubscriptionStatus.PAST_DUE:
        grace = state.observed_at + timedelta(days=settings.BILLING_GRACE_PERIOD_DAYS)
        fields["grace_until"] = account.grace_until or grace
    else:
        fields["grace_until"] = None
    if account.billing_period_end is None or state.period_end > account.billing_period_end:
        fields["billing_period_end"] = state.period_end

    old_rank = catalogue.TIERS[account.tier].rank
    new_rank = catalogue.TIERS[new_tier].rank
    allowance = None
    used = None
    if account.tier == Tier.FREE and new_tier != Tier.FREE:
        # A new subscriber: the allowance period follows Stripe's billing period from now on.
        start = state.period_start
        end = add_months(start, 1) if state.interval == BillingInterval.YEAR else state.period_end
        fields.update(
            tier=new_tier,
            pending_tier="",
            period_start=start,
            period_end=min(end, state.period_end),
            period_anchor=start,
        )
        allowance = tier_allowance(account=account, tier=new_tier)
        used = 0
    elif new_rank > old_rank:
        fields.update(tier=new_tier, pending_tier="")
        allowance = tier_allowance(account=account, tier=new_tier)
    elif new_rank < old_rank:
        fields["pending_tier"] = new_tier
    else:
        fields["pending_tier"] = ""

    changed = allowance is not None or any(
        getattr(account, name) != value
        for name, value in fields.items()
        if name not in {"stripe_state_at"}
    )
    if not changed:
        return None
    was_tier = account.tier
    entry = _apply(
        account,
        kind=LedgerKind.ALLOWANCE_CHANGE,
        actor=Actor.STRIPE,
        idempotency_key=key,
        allowance=allowance,
        used=used,
        reason=f"Subscription {status.label.lower()}: {new_tier}",
        source=source or state.subscription_id,
        details={
            "status": status.value,
            "tier": new_tier,
            "pending_tier": fields.get("pending_tier", account.pending_tier),
            "price": state.price_lookup_key,
        },
        **fields,
    )
    if account.tier != was_tier:
        _tier_activity(account, was_tier, entry)
    if status == SubscriptionStatus.PAST_DUE:
        activity_record(
            user=account.user,
            activity_type=ActivityType.PAYMENT_FAILED,
            title="Payment failed",
            description="Update your card to keep your plan.",
            ledger_entry=entry,
            dedupe_key=f"payment-failed:{state.subscription_id}:{state.period_end.isoformat()}",
        )
    return entry


def _tier_activity(account: CreditAccount, was_tier: str, entry: LedgerEntry) -> None:
    activity_record(
        user=account.user,
        activity_type=ActivityType.TIER_CHANGED,
        title=f"Plan changed to {catalogue.TIERS[account.tier].name}",
        description=f"From {catalogue.TIERS[was_tier].name}.",
        ledger_entry=entry,
    )


def _fall_to_free(
    account: CreditAccount,
    *,
    now: datetime,
    status: SubscriptionStatus,
    idempotency_key: str,
    reason: str,
    source: str,
    **fields: Any,
) -> LedgerEntry:
    """End paid access: the month's allowance goes, purchased credits always stay."""
    if (existing := _recorded(idempotency_key)) is not None:
        return existing
    was_tier = account.tier
    entry = _apply(
        account,
        kind=LedgerKind.ALLOWANCE_CHANGE,
        actor=Actor.STRIPE if status != SubscriptionStatus.PAST_DUE else Actor.SYSTEM,
        idempotency_key=idempotency_key,
        allowance=catalogue.FREE_TIER.monthly_credits,
        used=0,
        reason=reason,
        source=source,
        details={"status": status.value, "tier": Tier.FREE.value},
        tier=Tier.FREE,
        pending_tier="",
        subscription_status=(
            SubscriptionStatus.UNPAID if status == SubscriptionStatus.PAST_DUE else status
        ),
        cancel_at_period_end=False,
        billing_interval="",
        billing_period_end=None,
        grace_until=None,
        period_start=now,
        period_end=add_months(now, 1),
        period_anchor=now,
        **fields,
    )
    if was_tier != Tier.FREE:
        _tier_activity(account, was_tier, entry)
        activity_record(
            user=account.user,
            activity_type=ActivityType.SUBSCRIPTION_CANCELED,
            title="Subscription ended",
            description=reason,
            ledger_entry=entry,
        )
    return entry
