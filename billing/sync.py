"""Stripe's state -> our accounts, through the subscriptions rules.

Webhook receivers, the admin's resync and ``reconcile_billing`` all come here. Every function
reads the *current* Stripe object (dj-stripe has just re-fetched it for a webhook) rather than
trusting an event's snapshot, so late, duplicated and reordered deliveries converge; every
write is keyed so that a replay changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from activities.models import ActivityType, LedgerEntry
from activities.services import activity_record
from billing import clawbacks, gateway
from billing.stripe_data import (
    StripeDict,
    checkout_price_lookup_keys,
    invoice_subscription_id,
    invoice_subscription_period,
    object_id,
    price_entry,
    subscription_period,
    subscription_price,
    to_dict,
)
from subscriptions import catalogue, services
from subscriptions.models import CreditAccount

logger = logging.getLogger(__name__)

RENEWAL_REASONS = {"subscription_create", "subscription_cycle"}
PAID = {"paid", "no_payment_required"}


def user_for_customer(customer_id: str | None) -> AbstractBaseUser | None:
    if not customer_id:
        return None
    account = (
        CreditAccount.objects.select_related("user").filter(stripe_customer_id=customer_id).first()
    )
    return account.user if account else None


def _user_for(obj: StripeDict) -> AbstractBaseUser | None:
    """The user a Stripe object belongs to: by customer, else by the user id we put in metadata."""
    user = user_for_customer(object_id(obj.get("customer")))
    if user is not None:
        return user
    user_id = (obj.get("metadata") or {}).get("hrvstr_user_id") or obj.get("client_reference_id")
    if user_id and str(user_id).isdigit():
        user = get_user_model().objects.filter(pk=int(user_id)).first()
        customer_id = object_id(obj.get("customer"))
        if user is not None and customer_id:
            # Link a customer made outside our Checkout flow (e.g. in the dashboard), once.
            CreditAccount.objects.filter(user=user, stripe_customer_id__isnull=True).update(
                stripe_customer_id=customer_id
            )
        return user
    return None


def subscription_state(subscription: StripeDict, *, observed_at: datetime):
    """Our plain view of a Stripe subscription (tier None when its price is not ours)."""
    period = subscription_period(subscription)
    if period is None:
        raise ValueError(f"subscription {subscription.get('id')} has no items with a period")
    price = subscription_price(subscription) or {}
    entry = price_entry(price)
    recurring = price.get("recurring") or {}
    return services.SubscriptionState(
        subscription_id=subscription["id"],
        status=subscription["status"],
        tier=entry.tier.key if entry and entry.tier else None,
        price_lookup_key=price.get("lookup_key") or price.get("id") or "",
        interval=(entry.interval if entry else None) or recurring.get("interval") or "month",
        period_start=period[0],
        period_end=period[1],
        cancel_at_period_end=bool(subscription.get("cancel_at_period_end")),
        observed_at=observed_at,
    )


def subscription_apply(
    subscription: StripeDict, *, observed_at: datetime, idempotency_key: str, source: str = ""
) -> LedgerEntry | None:
    """Apply a Stripe subscription to its customer's account. Unknown customers are skipped."""
    user = _user_for(subscription)
    if user is None:
        logger.warning("subscription %s: no user for its customer", subscription.get("id"))
        return None
    state = subscription_state(subscription, observed_at=observed_at)
    return services.subscription_sync(
        user=user, state=state, idempotency_key=idempotency_key, source=source
    )


def invoice_paid_apply(invoice: StripeDict, *, event_id: str, observed_at: datetime) -> None:
    """A paid first or renewal invoice starts a paid period: sync the plan, reset the allowance.

    Proration and one-off invoices are not renewals and grant nothing.
    """
    if invoice.get("billing_reason") not in RENEWAL_REASONS:
        return
    subscription_id = invoice_subscription_id(invoice)
    period = invoice_subscription_period(invoice)
    user = _user_for(invoice)
    if not subscription_id or period is None or user is None:
        logger.warning("invoice %s: not linked to a known subscription/user", invoice.get("id"))
        return
    subscription = to_dict(gateway.subscription_retrieve(subscription_id))
    # The plan first, so the allowance granted below is the paid tier's.
    subscription_apply(
        subscription,
        observed_at=observed_at,
        idempotency_key=f"sub:{subscription_id}:{event_id}",
        source=event_id,
    )
    state = subscription_state(subscription, observed_at=observed_at)
    services.allowance_period_start(
        user=user,
        period_start=period[0],
        period_end=period[1],
        interval=state.interval,
        idempotency_key=f"invoice:{invoice['id']}",
        source=invoice["id"],
    )


def checkout_completed_apply(session: StripeDict, *, event_id: str) -> LedgerEntry | None:
    """A paid Checkout in payment mode adds the bundle's credits, once per session.

    Credits come from the catalogue entry of the price bought, never from the amount paid.
    Subscription-mode sessions need nothing here: their subscription and invoice events do it.
    """
    # A fully discounted session (a 100% promotion code) is "no_payment_required": as good as
    # paid. "unpaid" waits for checkout.session.async_payment_succeeded (a bank debit).
    if session.get("mode") != "payment" or session.get("payment_status") not in PAID:
        return None
    user = _user_for(session)
    if user is None:
        logger.warning("checkout %s: no user", session.get("id"))
        return None
    credits = 0
    for lookup_key, quantity in checkout_price_lookup_keys(session):
        entry = catalogue.PRICES_BY_LOOKUP_KEY.get(lookup_key)
        if entry is None or entry.bundle is None:
            logger.error("checkout %s: price %r is not a bundle", session.get("id"), lookup_key)
            continue
        credits += entry.bundle.credits * quantity
    if credits == 0:
        return None
    payment_intent = object_id(session.get("payment_intent")) or ""
    purchase = services.credits_purchase_add(
        user=user,
        credits=credits,
        idempotency_key=f"checkout:{session['id']}",
        source=session["id"],
        reason=f"Bought {credits} credits",
        payment_intent=payment_intent,
        amount_cents=int(session.get("amount_total") or 0),
    )
    # A refund or dispute may have arrived before this event (Stripe does not order them, and
    # a dispute test card is disputed at once) and found no purchase: settle it now.
    clawbacks.purchase_clawback_sync(payment_intent_id=payment_intent)
    return purchase


def checkout_payment_failed_apply(session: StripeDict, *, event_id: str) -> None:
    """A delayed payment (bank debit) for a bundle failed: nothing to grant, tell the user."""
    user = _user_for(session)
    if user is None:
        return
    activity_record(
        user=user,
        activity_type=ActivityType.PAYMENT_FAILED,
        title="Payment failed",
        description="Your credit purchase could not be charged; no credits were added.",
        dedupe_key=f"checkout-failed:{session['id']}",
    )


def charge_refunded_apply(charge: StripeDict, *, event_id: str) -> LedgerEntry | None:
    """A refund of a bundle's payment: claw back its share (``billing.clawbacks``)."""
    return clawbacks.purchase_clawback_sync(
        payment_intent_id=object_id(charge.get("payment_intent"))
    )


def refund_changed_apply(refund: StripeDict, *, event_id: str) -> LedgerEntry | None:
    """A refund changed (pending -> succeeded, or failed later): settle the clawback again."""
    return clawbacks.purchase_clawback_sync(
        payment_intent_id=object_id(refund.get("payment_intent"))
    )


def dispute_apply(dispute: StripeDict, *, event_id: str) -> LedgerEntry | None:
    """A dispute on a bundle's payment, at any stage: an inquiry takes nothing, withdrawn funds
    take the disputed share, reinstated funds (a won dispute) give it back."""
    return clawbacks.purchase_clawback_sync(
        payment_intent_id=object_id(dispute.get("payment_intent"))
    )


@dataclass(frozen=True)
class Drift:
    user_id: int
    email: str
    field: str
    ours: Any
    stripe: Any


def account_drift(account: CreditAccount) -> tuple[list[Drift], dict[str, Any] | None]:
    """Compare an account with Stripe's view: returns the differences and the subscription."""
    if not account.stripe_customer_id:
        return [], None
    subscriptions = [to_dict(s) for s in gateway.subscriptions_list(account.stripe_customer_id)]
    live = [s for s in subscriptions if s["status"] in {"active", "trialing", "past_due"}]
    current = max(live or subscriptions, key=lambda s: s.get("created") or 0, default=None)
    found: list[Drift] = []
    email = account.user.email

    def differs(field: str, ours: Any, theirs: Any) -> None:
        if ours != theirs:
            found.append(Drift(account.user_id, email, field, ours, theirs))

    if current is None:
        differs("tier", account.tier, "free")
        return found, None
    state = subscription_state(current, observed_at=timezone.now())
    if current["status"] in {"active", "trialing", "past_due"}:
        expected_tier = state.tier or account.tier
        # A downgrade waiting for the period end is in sync, not drift.
        if expected_tier not in {account.tier, account.pending_tier}:
            differs("tier", account.tier, expected_tier)
        differs("subscription_status", account.subscription_status, current["status"])
        differs("stripe_subscription_id", account.stripe_subscription_id, current["id"])
        differs("billing_period_end", account.billing_period_end, state.period_end)
        differs("cancel_at_period_end", account.cancel_at_period_end, state.cancel_at_period_end)
    else:
        differs("tier", account.tier, "free")
    return found, current


def account_resync(*, account: CreditAccount, reason: str = "resync") -> str:
    """Bring one account in line with Stripe's current subscription; returns a summary."""
    drift, current = account_drift(account)
    if not drift:
        return "in sync"
    if current is not None:
        subscription_apply(
            current,
            observed_at=timezone.now(),
            idempotency_key=f"{reason}:{current['id']}:{timezone.now().timestamp()}",
            source=reason,
        )
    else:
        services.subscription_sync(
            user=account.user,
            state=services.SubscriptionState(
                subscription_id=account.stripe_subscription_id or "none",
                status="canceled",
                tier=None,
                price_lookup_key="",
                interval="month",
                period_start=timezone.now(),
                period_end=timezone.now(),
                cancel_at_period_end=False,
                observed_at=timezone.now(),
            ),
            idempotency_key=f"{reason}:none:{account.pk}:{timezone.now().timestamp()}",
            source=reason,
        )
    return "; ".join(f"{d.field}: {d.ours!r} -> {d.stripe!r}" for d in drift)
