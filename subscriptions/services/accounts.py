"""Accounts and their allowance periods: opening, reading up to date, monthly renewal."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from activities.models import ActivityType, Actor, LedgerEntry, LedgerKind
from activities.notifications import email_once
from activities.services import activity_record
from hrvstr.errors import InvalidAmount
from subscriptions import catalogue
from subscriptions.catalogue import FREE_TIER
from subscriptions.models import (
    BillingInterval,
    CreditAccount,
    SubscriptionStatus,
)
from subscriptions.periods import add_months, monthly_period_containing
from subscriptions.services.core import apply_change, lock_account, recorded_entry, tier_allowance
from subscriptions.services.holds import holds_expire_locked
from subscriptions.services.tiers import fall_to_free_locked

logger = logging.getLogger(__name__)


def account_create(*, user: User, now: datetime | None = None) -> CreditAccount:
    """Open the free credit account that every user has from sign-up."""
    now = now or timezone.now()
    with transaction.atomic():
        account, created = CreditAccount.objects.get_or_create(
            user=user,
            defaults=dict(
                tier=FREE_TIER.key,
                monthly_allowance=0,
                period_start=now,
                period_end=add_months(now, 1),
                period_anchor=now,
            ),
        )
        if created and catalogue.FREE_TIER.monthly_credits:
            # The first allowance is a ledger row like every later one, so the ledger sums
            # to the account from its first instant.
            apply_change(
                account,
                kind=LedgerKind.PERIOD_RESET,
                actor=Actor.SYSTEM,
                idempotency_key=f"open:{account.pk}",
                allowance=catalogue.FREE_TIER.monthly_credits,
                used=0,
                reason=f"{catalogue.FREE_TIER.name} monthly allowance",
                details={
                    "period_start": now.isoformat(),
                    "period_end": account.period_end.isoformat(),
                },
            )
    return account


def account_get(*, user: User, now: datetime | None = None) -> CreditAccount:
    """The user's account, brought up to date (period roll, expired holds, ended grace)."""
    try:
        account = user.credit_account
    except CreditAccount.DoesNotExist:
        account = account_create(user=user, now=now)
    return account_refresh(account=account, now=now)


def _holds_due(account: CreditAccount, now: datetime) -> bool:
    return account.next_hold_expiry_at is not None and account.next_hold_expiry_at <= now


def _period_over(account: CreditAccount, now: datetime) -> bool:
    return account.period_end <= now and rolls_by_itself(account)


def refresh_due(account: CreditAccount, now: datetime) -> bool:
    """Whether a read must take the lock: a hold expired, the grace ran out or a period ended."""
    return _holds_due(account, now) or account.grace_over(now) or _period_over(account, now)


def rolls_by_itself(account: CreditAccount) -> bool:
    """Free accounts and yearly plans renew their monthly allowance without a Stripe invoice."""
    if account.tier == FREE_TIER.key:
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
    if not refresh_due(account, now):
        return account
    with transaction.atomic():
        locked = lock_account(account.user_id)
        refresh_locked(locked, now)
    return locked


def refresh_locked(account: CreditAccount, now: datetime) -> None:
    """Do what fell due, in order, on an account whose row lock the caller holds."""
    if _holds_due(account, now):
        holds_expire_locked(account, now)
    grace_until = account.grace_until
    if grace_until is not None and account.grace_over(now):  # grace_over implies a grace_until
        fall_to_free_locked(
            account,
            now=now,
            status=SubscriptionStatus.PAST_DUE,
            idempotency_key=f"grace-ended:{account.user_id}:{grace_until.isoformat()}",
            reason="Payment grace period ended",
            source=account.stripe_subscription_id,
        )
    if _period_over(account, now):
        start, end = monthly_period_containing(account.period_anchor, now)
        if account.billing_period_end is not None and account.tier != FREE_TIER.key:
            end = min(end, account.billing_period_end)
        reset_locked(
            account,
            period_start=start,
            period_end=end,
            idempotency_key=f"period:{account.user_id}:{start.isoformat()}",
            actor=Actor.SYSTEM,
            source="",
            reason="Monthly allowance renewed",
        )


def reset_locked(
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
    existing = recorded_entry(idempotency_key)
    if existing is not None:
        return existing
    # The tier is what Stripe bills now; a scheduled change (``pending_tier``) happens when
    # Stripe switches the price, never here.
    tier = account.tier
    # The first invoice of a new subscription restarts the period the subscription began
    # (``subscription_sync``): nothing of an earlier month is left to expire.
    if (unused := account.monthly_remaining) > 0 and account.period_start != period_start:
        # What was left of the month expires: its own row, so the ledger and the API say
        # "Monthly allowance expired" instead of showing the reset as a loss of credits.
        apply_change(
            account,
            kind=LedgerKind.ALLOWANCE_EXPIRED,
            actor=actor,
            idempotency_key=f"{idempotency_key}:expired",
            allowance=account.monthly_used,
            reason="Monthly allowance expired",
            source=source,
            details={"unused": unused, "period_end": account.period_end.isoformat()},
        )
    entry = apply_change(
        account,
        kind=LedgerKind.PERIOD_RESET,
        actor=actor,
        idempotency_key=idempotency_key,
        allowance=tier_allowance(account=account, tier=tier),
        used=0,
        reason=reason,
        source=source,
        details={"period_start": period_start.isoformat(), "period_end": period_end.isoformat()},
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
        | CreditAccount.objects.grace_over_q(now)
    ).order_by("pk")
    last_pk = 0
    while True:
        batch = list(due.filter(pk__gt=last_pk)[:batch_size])
        if not batch:
            return renewed
        for account in batch:
            last_pk = account.pk
            if refresh_due(account, now):
                before = account.version
                refreshed = account_refresh(account=account, now=now)
                renewed += refreshed.version != before


def allowance_period_start(
    *,
    user: User,
    period_start: datetime,
    period_end: datetime,
    interval: str,
    idempotency_key: str,
    source: str = "",
    subscription_id: str | None = None,
) -> LedgerEntry | None:
    """A paid period began (Stripe's renewal or first invoice was paid): reset the allowance.

    A yearly period gets its first monthly allowance now and the rest from the monthly roll.
    An invoice for a period older than the current one (a late delivery) changes nothing, nor
    does one of ``subscription_id`` when that is not the account's subscription (a duplicate,
    ended when it was applied).
    """
    if (existing := recorded_entry(idempotency_key)) is not None:  # a replay takes no lock
        return existing
    with transaction.atomic():
        account = lock_account(user.pk)
        if (existing := recorded_entry(idempotency_key)) is not None:
            return existing
        if subscription_id is not None and account.stripe_subscription_id != subscription_id:
            logger.warning("%s: not the account's subscription; no period", idempotency_key)
            return None
        if account.billing_period_end is not None and period_end < account.billing_period_end:
            logger.info("ignoring paid invoice for an older period (%s)", idempotency_key)
            return None
        if account.period_start == period_start:
            # This period already began here, with its allowance: a new subscription's first
            # invoice after its subscription event, or a yearly plan whose month rolled at the
            # anniversary. A second reset would write a +0 row, or hand back what was spent
            # since; only Stripe's billing period is recorded.
            CreditAccount.objects.filter(pk=account.pk).update(
                billing_period_end=period_end,
                billing_interval=interval,
                version=F("version") + 1,
            )
            return None
        allowance_end = add_months(period_start, 1) if interval == BillingInterval.YEAR else None
        return reset_locked(
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


def customer_link(*, user_id: int, customer_id: str) -> str:
    """Record ``customer_id`` as the user's Stripe customer unless one is recorded already;
    returns the recorded one. A conditional update, no lock: the first id recorded wins, so
    two requests creating a customer at once agree on one."""
    unset = Q(stripe_customer_id__isnull=True) | Q(stripe_customer_id="")
    if CreditAccount.objects.filter(unset, user_id=user_id).update(stripe_customer_id=customer_id):
        return customer_id
    stored = CreditAccount.objects.values_list("stripe_customer_id", flat=True).get(user_id=user_id)
    return stored or customer_id


def customer_forget(*, account: CreditAccount, customer_id: str) -> bool:
    """Forget ``customer_id`` (deleted at Stripe) and what hung on it, if it is still the
    account's customer; whether it was."""
    return bool(
        CreditAccount.objects.filter(pk=account.pk, stripe_customer_id=customer_id).update(
            stripe_customer_id=None, stripe_subscription_id="", pending_tier=""
        )
    )


MAX_LOW_CREDIT_THRESHOLD = 1_000_000


def low_credit_threshold_set(*, user: User, threshold: int) -> None:
    """The user's "tell me when fewer than N credits are left" (0: never)."""
    _threshold_set(user, "low_credit_threshold", threshold)


def _threshold_set(user: User, field: str, value: int) -> None:
    """A credit threshold the user chooses (0: off). A preference, not a balance: no ledger
    row; what it triggers (an e-mail, a purchase) records its own."""
    if not 0 <= value <= MAX_LOW_CREDIT_THRESHOLD:
        raise InvalidAmount(
            f"the threshold must be between 0 and {MAX_LOW_CREDIT_THRESHOLD:,}", **{field: value}
        )
    account_get(user=user)  # the row exists
    CreditAccount.objects.filter(user=user).update(**{field: value})


def auto_topup_below_set(*, user: User, below: int) -> None:
    """Turn auto top-up on below ``below`` credits, or off (0)."""
    _threshold_set(user, "auto_topup_below", below)


def low_credit_notice(*, account: CreditAccount, remaining: int) -> bool:
    """E-mail the user, once per allowance period, when ``remaining`` is below their
    threshold; whether it was sent now."""
    threshold = account.low_credit_threshold
    if not threshold or remaining >= threshold:
        return False
    return email_once(
        user=account.user,
        key=f"low-credits:{account.user_id}:{account.period_start:%Y%m%dT%H%M%S}",
        kind="low_credits",
        context={"remaining": remaining, "threshold": threshold},
    )


def low_credit_notices_send() -> int:
    """The scheduled sweep: every account below its threshold, whatever took the credits
    (spends, holds, unlocks, clawbacks, an expired allowance). Safe to run often."""
    below = CreditAccount.objects.below("low_credit_threshold").select_related("user")
    return sum(low_credit_notice(account=a, remaining=a.remaining) for a in below.iterator())
