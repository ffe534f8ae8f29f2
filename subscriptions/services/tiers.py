"""Tiers: what Stripe's subscription state means for the account."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F

from activities.models import ActivityType, Actor, LedgerEntry, LedgerKind
from activities.notifications import email_once
from activities.services import activity_record
from subscriptions import catalogue
from subscriptions.catalogue import FREE_TIER
from subscriptions.models import (
    BillingInterval,
    CreditAccount,
    SubscriptionStatus,
)
from subscriptions.periods import add_months
from subscriptions.services.core import (
    ENDED_STATUSES,
    LIVE_STATUSES,
    apply_change,
    lock_account,
    recorded_entry,
    tier_allowance,
)

logger = logging.getLogger(__name__)


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
    # Stripe has been paid for this price (the change's invoice is paid or nothing is due):
    # an upgrade waits for it; a downgrade or the same tier never needs it.
    paid: bool = True
    # The tier a Stripe subscription schedule switches to at the period end ("" for none).
    scheduled_tier: str = ""
    # Read from Stripe just now (resync, reconcile), not from an event: it is Stripe's current
    # state, so no earlier-applied event can be newer than it.
    authoritative: bool = False

    def pending_tier(self, tier: str) -> str:
        """What the page announces as "Changes to ...": the scheduled tier, unless it is
        ``tier`` (a switch of interval alone keeps the plan)."""
        return self.scheduled_tier if self.scheduled_tier != tier else ""


def subscription_sync(
    *, user: User, state: SubscriptionState, idempotency_key: str, source: str = ""
) -> LedgerEntry | None:
    """Apply Stripe's view of a subscription to the account's tier and allowance.

    The app follows what Stripe bills, whichever path changed the plan (our pages, the API, the
    customer portal, the dashboard):

    - An upgrade takes effect when Stripe has switched the price *and been paid* for it
      (``state.paid``): the allowance rises to the new tier's; usage already counted in the
      period stays counted (remaining grows by the difference). Unpaid, the old tier stays.
    - A downgrade takes effect when Stripe switches the price (at the period end when it was
      scheduled there, in Stripe, by a subscription schedule); ``pending_tier`` only mirrors
      such a schedule for display.
    - ``past_due`` keeps the tier for the grace period; ended subscriptions fall to free.
    - An unknown price never downgrades: the tier is kept and the problem flagged for staff.
    - State older than what was applied (by Stripe's own event times, never our clock), or
      about a subscription that was replaced, is ignored; an ``authoritative`` read of
      Stripe's current state always applies.
    Returns the ledger row, or None when nothing changed.
    """
    if (existing := recorded_entry(idempotency_key)) is not None:  # a replay takes no lock
        return existing
    with transaction.atomic():
        account = lock_account(user.pk)
        if (existing := recorded_entry(idempotency_key)) is not None:
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
    elif (
        not state.authoritative
        and account.stripe_state_at is not None
        and state.observed_at < account.stripe_state_at
    ):
        return None  # a late delivery of an older state (both times are Stripe's)
    # Only an event's own time (Stripe's clock) moves the mark later events are compared
    # with; an authoritative read may carry our clock's time and must not: a mark ahead of
    # Stripe's clock would make every later event look stale.
    state_at = account.stripe_state_at
    if not state.authoritative and (state_at is None or state.observed_at > state_at):
        state_at = state.observed_at
    common = dict(
        stripe_state_at=state_at,
        stripe_subscription_id=state.subscription_id,
        subscription_status=status,
        cancel_at_period_end=state.cancel_at_period_end,
    )
    if status in ENDED_STATUSES:
        if account.tier == FREE_TIER.key and account.subscription_status == status:
            return None
        return fall_to_free_locked(
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
    current_tier = catalogue.TIERS[account.tier]
    if state.tier is None:
        problem = f"Unknown Stripe price {state.price_lookup_key or '(no lookup key)'}"
        logger.error("%s on subscription %s; tier kept", problem, state.subscription_id)
        fields["billing_problem"] = problem[:255]
        new_tier = account.tier
    elif not current_tier.at_least(state.tier) and not state.paid:
        # Stripe switched to a higher price but has not been paid for it (a failed proration
        # charge, or a proration left for a later invoice): keep what was paid for.
        logger.info("subscription %s: %s not paid yet", state.subscription_id, state.tier)
        new_tier = account.tier
    else:
        fields["billing_problem"] = ""
        fields["stripe_price_lookup_key"] = state.price_lookup_key
        new_tier = state.tier
    if status == SubscriptionStatus.PAST_DUE:
        fields["grace_until"] = account.grace_deadline(past_due_at=state.observed_at)
    else:
        fields["grace_until"] = None
    # A state newer on Stripe's clock (or read from Stripe just now) is Stripe's word even when
    # its period ends sooner: a switch from yearly to monthly restarts the billing cycle (found
    # by the soak). Between two states of the same second, the later period end wins.
    newer = (
        state.authoritative
        or account.stripe_state_at is None
        or state.observed_at > account.stripe_state_at
    )
    if account.billing_period_end is None or newer or state.period_end > account.billing_period_end:
        fields["billing_period_end"] = state.period_end

    scheduled = state.pending_tier(new_tier)
    allowance = None
    used = None
    kind = LedgerKind.ALLOWANCE_CHANGE
    reason = f"Subscription {status.label.lower()}: {new_tier}"
    if account.tier == FREE_TIER.key and new_tier != FREE_TIER.key:
        # A new subscriber: the allowance period follows Stripe's billing period from now on.
        start = state.period_start
        end = add_months(start, 1) if state.interval == BillingInterval.YEAR else state.period_end
        fields.update(
            tier=new_tier,
            pending_tier=scheduled,
            period_start=start,
            period_end=min(end, state.period_end),
            period_anchor=start,
        )
        allowance = tier_allowance(account=account, tier=new_tier)
        used = 0
    elif new_tier != account.tier and state.period_start >= account.period_end:
        # The change came with a new billing period (a scheduled downgrade at the renewal):
        # what was left of the ended month expires, and the new tier's allowance comes with
        # the period's paid invoice (``allowance_period_start``), as every renewal's does.
        fields.update(tier=new_tier, pending_tier=scheduled)
        allowance = account.monthly_used
        kind = LedgerKind.ALLOWANCE_EXPIRED
        reason = "Monthly allowance expired"
    elif new_tier != account.tier:
        # Up (paid for) or down (Stripe bills the lower price now): the allowance follows.
        # Usage already counted stays counted, all of it: a downgrade below what was used
        # leaves nothing of the month (the allowance stays at the usage), so going down and
        # up again can never forgive usage and mint credits.
        fields.update(tier=new_tier, pending_tier=scheduled)
        allowance = max(tier_allowance(account=account, tier=new_tier), account.monthly_used)
    else:
        fields["pending_tier"] = scheduled

    changed = allowance is not None or any(
        getattr(account, name) != value
        for name, value in fields.items()
        if name not in {"stripe_state_at"}
    )
    if not changed:
        return None
    if allowance is None:
        # Same tier, same credits (a cancellation set or undone, a scheduled change, a new
        # period end, past due): the account follows Stripe, the ledger gets no row, since
        # its rows are changes of credits or tier. A zero row per portal visit or resync
        # buried the real ones.
        cancel_changed = account.cancel_at_period_end != state.cancel_at_period_end
        CreditAccount.objects.filter(pk=account.pk).update(version=F("version") + 1, **fields)
        for name, value in fields.items():
            setattr(account, name, value)
        if cancel_changed:
            cancellation_activity_record(account, state)
        _past_due_activity_record(account, state, None)
        return None
    was_tier = account.tier
    entry = apply_change(
        account,
        kind=kind,
        actor=Actor.STRIPE,
        idempotency_key=key,
        allowance=allowance,
        used=used,
        reason=reason,
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
        tier_activity_record(account, was_tier, entry)
    _past_due_activity_record(account, state, entry)
    return entry


def _past_due_activity_record(
    account: CreditAccount, state: SubscriptionState, entry: LedgerEntry | None
) -> None:
    if state.status != SubscriptionStatus.PAST_DUE:
        return
    activity_record(
        user=account.user,
        activity_type=ActivityType.PAYMENT_FAILED,
        title="Payment failed",
        description="Update your card to keep your plan.",
        ledger_entry=entry,
        dedupe_key=f"payment-failed:{state.subscription_id}:{state.period_end.isoformat()}",
    )


def cancellation_activity_record(account: CreditAccount, state: SubscriptionState) -> None:
    """A feed line when a cancellation at the period end is set or undone (once per change:
    the state is applied once, whether our page or the webhook gets there first)."""
    if state.cancel_at_period_end:
        activity_record(
            user=account.user,
            activity_type=ActivityType.SUBSCRIPTION_CANCELED,
            title="Subscription set to end",
            description=(
                f"Your plan ends on {state.period_end:%-d %b %Y}; you can resume it until then."
            ),
        )
    else:
        activity_record(
            user=account.user,
            activity_type=ActivityType.SUBSCRIPTION_RESUMED,
            title="Subscription resumed",
            description="Your plan renews as before.",
        )


def tier_activity_record(account: CreditAccount, was_tier: str, entry: LedgerEntry) -> None:
    """The feed line and the e-mail of a tier change (once per ledger row)."""
    tier, was = catalogue.TIERS[account.tier], catalogue.TIERS[was_tier]
    activity_record(
        user=account.user,
        activity_type=ActivityType.TIER_CHANGED,
        title=f"Plan changed to {tier.name}",
        description=f"From {was.name}.",
        ledger_entry=entry,
    )
    email_once(
        user=account.user,
        key=f"plan-changed:{entry.pk}",
        kind="plan_changed",
        context={
            "tier_name": tier.name,
            "was_name": was.name,
            "reason": entry.reason,
            "monthly_credits": tier_allowance(account=account, tier=tier.key),
            "purchased": account.purchased_balance,
        },
    )


def fall_to_free_locked(
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
    if (existing := recorded_entry(idempotency_key)) is not None:
        return existing
    was_tier = account.tier
    entry = apply_change(
        account,
        kind=LedgerKind.ALLOWANCE_CHANGE,
        actor=Actor.STRIPE if status != SubscriptionStatus.PAST_DUE else Actor.SYSTEM,
        idempotency_key=idempotency_key,
        allowance=catalogue.FREE_TIER.monthly_credits,
        used=0,
        reason=reason,
        source=source,
        details={"status": status.value, "tier": FREE_TIER.key},
        tier=FREE_TIER.key,
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
    if was_tier != FREE_TIER.key:
        tier_activity_record(account, was_tier, entry)
        activity_record(
            user=account.user,
            activity_type=ActivityType.SUBSCRIPTION_CANCELED,
            title="Subscription ended",
            description=reason,
            ledger_entry=entry,
        )
    return entry
