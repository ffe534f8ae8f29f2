"""Stripe's state -> our accounts, through the subscriptions rules.

Webhook receivers, the admin's resync and ``reconcile_billing`` all come here. Every function
reads the *current* Stripe object (re-read for a webhook: billing/event_objects.py) rather than
trusting an event's snapshot, so late, duplicated and reordered deliveries converge; every
write is keyed so that a replay changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from djstripe import models as djstripe_models

from activities.models import ActivityType, LedgerEntry
from activities.services import activity_record
from billing import clawbacks, gateway
from billing.duplicates import kept_subscription
from billing.stripe_data import (
    StripeDict,
    checkout_price_lookup_keys,
    invoice_bills_price_to,
    invoice_subscription,
    invoice_subscription_id,
    invoice_subscription_period,
    object_id,
    price_entry,
    subscription_period,
    subscription_price,
    subscription_price_id,
    timestamp,
    to_dict,
)
from subscriptions import catalogue, services
from subscriptions.models import LIVE_STATUSES, CreditAccount

logger = logging.getLogger(__name__)

RENEWAL_REASONS = {"subscription_create", "subscription_cycle"}
PAID = {"paid", "no_payment_required"}
CUSTOMER_GONE = "customer-gone:"


def user_for_customer(customer_id: str | None) -> User | None:
    if not customer_id:
        return None
    account = (
        CreditAccount.objects.select_related("user").filter(stripe_customer_id=customer_id).first()
    )
    return account.user if account else None


def _user_for(obj: StripeDict) -> User | None:
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
            services.customer_link(user_id=user.pk, customer_id=customer_id)
        return user
    return None


def subscription_state(
    subscription: StripeDict, *, observed_at: datetime
) -> services.SubscriptionState:
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


def subscription_paid_for(subscription: StripeDict) -> bool:
    """Whether Stripe has been paid for the subscription's current price.

    The change's invoice (the subscription's latest) must be paid, or owe nothing; and no
    proration for it may be waiting for a later invoice (a ``create_prorations`` change made in
    the dashboard is billed at the renewal: the upgrade is granted when that invoice is paid).
    """
    latest = subscription.get("latest_invoice")
    if invoice_id := object_id(latest):
        # Expanded when read for an event (billing/event_objects.py): no second call.
        invoice = (
            latest if isinstance(latest, Mapping) else to_dict(gateway.invoice_retrieve(invoice_id))
        )
        if invoice.get("status") != "paid" and int(invoice.get("amount_due") or 0) > 0:
            return False
        if invoice_bills_price_to(
            invoice, subscription_price_id(subscription), subscription_period(subscription)
        ):
            # Paid for this price up to the period's end: a proration waiting for a later invoice
            # comes from a change made after this invoice, so the price would not be this one.
            return True
    customer_id = object_id(subscription.get("customer"))
    if customer_id:
        owed = 0
        for stripe_item in gateway.invoice_items_pending(customer_id):
            item = to_dict(stripe_item)
            parent = (item.get("parent") or {}).get("subscription_details") or {}
            if object_id(parent.get("subscription")) == subscription["id"]:
                owed += int(item.get("amount") or 0)
        if owed > 0:
            return False
    return True


def scheduled_tier(subscription: StripeDict) -> str:
    """The tier a Stripe subscription schedule moves this subscription to next ("" if none)."""
    schedule_id = object_id(subscription.get("schedule"))
    if not schedule_id:
        return ""
    schedule = to_dict(gateway.subscription_schedule_retrieve(schedule_id))
    if schedule.get("status") not in {"active", "not_started"}:
        return ""
    current = schedule.get("current_phase") or {}
    for phase in schedule.get("phases") or []:
        if current.get("end_date") and phase.get("start_date") == current["end_date"]:
            items = phase.get("items") or []
            price_id = object_id(items[0].get("price")) if items else None
            if price_id:
                entry = price_entry(to_dict(gateway.price_retrieve(price_id)))
                return entry.tier.key if entry and entry.tier else ""
    return ""


def state_for(
    user: User,
    subscription: StripeDict,
    *,
    observed_at: datetime,
    authoritative: bool = False,
) -> services.SubscriptionState:
    """The subscription's state with what Stripe says about payment and scheduled changes."""
    state = subscription_state(subscription, observed_at=observed_at)
    paid = True
    if state.tier is not None and state.status in LIVE_STATUSES:
        # Read with the user when it came from ``user_for_customer``; else one query.
        account = getattr(user, "credit_account", None)
        current = catalogue.TIERS[account.tier] if account else catalogue.FREE_TIER
        if not current.at_least(state.tier):
            paid = subscription_paid_for(subscription)
    return replace(
        state,
        paid=paid,
        scheduled_tier=scheduled_tier(subscription) if state.status in LIVE_STATUSES else "",
        authoritative=authoritative,
    )


def stripe_time_of(subscription: StripeDict) -> datetime:
    """A time on Stripe's clock that this subscription state is at least as new as."""
    stamps = [subscription.get("created"), subscription.get("canceled_at")]
    stamps.append(subscription.get("ended_at"))
    for item in (subscription.get("items") or {}).get("data") or []:
        stamps.append(item.get("current_period_start"))
    return timestamp(max(int(s) for s in stamps if s is not None))


def subscription_apply(
    subscription: StripeDict,
    *,
    observed_at: datetime,
    idempotency_key: str,
    source: str = "",
    authoritative: bool = False,
    user: User | None = None,
) -> LedgerEntry | None:
    """Apply a Stripe subscription to its customer's account. Unknown customers are skipped.

    A second live subscription of the same customer is ended here (see
    ``billing.duplicates``) and the one kept is applied instead. ``user``: the customer's
    user, when the caller has just read it (an invoice's); else it is read here.
    """
    user = user or _user_for(subscription)
    if user is None:
        logger.warning("subscription %s: no user for its customer", subscription.get("id"))
        return None
    kept = kept_subscription(user, subscription)
    if kept["id"] != subscription["id"]:
        idempotency_key = f"{idempotency_key}:kept:{kept['id']}"[:100]
        subscription = kept
        if not authoritative:
            # The kept one was re-read from Stripe just now: its state is current.
            authoritative = True
            observed_at = stripe_time_of(kept)
    state = state_for(user, subscription, observed_at=observed_at, authoritative=authoritative)
    return services.subscription_sync(
        user=user, state=state, idempotency_key=idempotency_key, source=source
    )


def subscription_end_here(*, account: CreditAccount, idempotency_key: str, source: str) -> None:
    """Stripe has no live subscription for this account any more: end ours now (to free).

    A free account without a live subscription has nothing to end (and no fresh allowance
    to get).
    """
    if account.tier == "free" and not account.subscription_live:
        return
    now = timezone.now()
    services.subscription_sync(
        user=account.user,
        state=services.SubscriptionState(
            subscription_id=account.stripe_subscription_id or "none",
            status="canceled",
            tier=None,
            price_lookup_key="",
            interval="month",
            period_start=now,
            period_end=now,
            cancel_at_period_end=False,
            observed_at=now,
            authoritative=True,
        ),
        idempotency_key=idempotency_key,
        source=source,
    )


def customer_unlink(*, customer_id: str, source: str) -> bool:
    """Stripe no longer has this customer: forget it and end its subscriptions here.

    The next Checkout creates a new customer. Purchased credits stay (they were paid for).
    """
    account = (
        CreditAccount.objects.select_related("user").filter(stripe_customer_id=customer_id).first()
    )
    if account is None:
        return False
    with transaction.atomic():
        subscription_end_here(
            account=account,
            idempotency_key=f"customer-gone:{customer_id}",
            source=source or customer_id,
        )
        services.customer_forget(account=account, customer_id=customer_id)
        # Also what makes the next customer's creation key new (``customer_ensure``).
        activity_record(
            user=account.user,
            activity_type=ActivityType.SUBSCRIPTION_CANCELED,
            title="Billing account closed",
            description="Your billing account was closed at Stripe; choose a plan to start again.",
            dedupe_key=f"{CUSTOMER_GONE}{customer_id}",
        )
    logger.warning(
        "customer %s is gone at Stripe: unlinked from user %s", customer_id, account.user_id
    )
    return True


def customer_deleted_apply(customer_id: str, *, event_id: str) -> bool:
    """``customer.deleted``: unlink only once Stripe confirms the customer is gone."""
    try:
        customer = to_dict(gateway.customer_retrieve(customer_id))
    except gateway.CustomerMissing:
        customer = {"deleted": True}
    if not customer.get("deleted"):
        logger.warning("customer.deleted %s: Stripe still has the customer; ignored", event_id)
        return False
    return customer_unlink(customer_id=customer_id, source=event_id)


def invoice_paid_apply(invoice: StripeDict, *, event_id: str, observed_at: datetime) -> None:
    """A paid first or renewal invoice starts a paid period: sync the plan, reset the allowance.

    A paid plan-change invoice (``subscription_update``) makes an upgrade that waited for the
    money take effect; it starts no period. Other invoices grant nothing.
    """
    reason = invoice.get("billing_reason")
    if reason not in RENEWAL_REASONS and reason != "subscription_update":
        return
    subscription_id = invoice_subscription_id(invoice)
    period = invoice_subscription_period(invoice)
    user = _user_for(invoice)
    if not subscription_id or user is None or (period is None and reason in RENEWAL_REASONS):
        logger.warning("invoice %s: not linked to a known subscription/user", invoice.get("id"))
        return
    subscription = invoice_subscription(invoice) or to_dict(
        gateway.subscription_retrieve(subscription_id)
    )
    if object_id(subscription.get("latest_invoice")) == invoice.get("id"):
        subscription["latest_invoice"] = invoice  # what subscription_paid_for reads
    # The plan first, so the allowance granted below is the paid tier's.
    subscription_apply(
        subscription,
        observed_at=observed_at,
        idempotency_key=f"sub:{subscription_id}:{event_id}",
        source=event_id,
        user=user,
    )
    if reason not in RENEWAL_REASONS or period is None:
        return
    state = subscription_state(subscription, observed_at=observed_at)
    services.allowance_period_start(
        user=user,
        period_start=period[0],
        period_end=period[1],
        interval=state.interval,
        idempotency_key=f"invoice:{invoice['id']}",
        source=invoice["id"],
        # A duplicate subscription (cancelled and refunded above) starts no period.
        subscription_id=subscription_id,
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
    # A refund or dispute may have arrived before this event (Stripe does not order them, and
    # a dispute test card is disputed at once) and found no purchase: it is settled below.
    # Stripe is read now, before the purchase locks the account (held until the webhook's
    # transaction commits), so the customer's spends never wait on Stripe.
    owed = clawbacks.owed_cents(session["payment_intent"]) if payment_intent else 0
    purchase = services.credits_purchase_add(
        user=user,
        credits=credits,
        idempotency_key=f"checkout:{session['id']}",
        source=session["id"],
        reason=f"Bought {credits} credits",
        payment_intent=payment_intent,
        amount_cents=int(session.get("amount_total") or 0),
    )
    if payment_intent:
        clawbacks.purchase_clawback_settle(purchase, owed=owed)
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


def price_entry_for_id(price_id: str) -> catalogue.PriceEntry | None:
    """The catalogue entry a Stripe price id sells: dj-stripe's mirror first, else Stripe (and
    the answer is mirrored, so each price is fetched once); None for a stranger."""
    lookup_key = (
        djstripe_models.Price.objects.filter(id=price_id)
        .values_list("lookup_key", flat=True)
        .first()
    )
    if lookup_key is None:
        try:
            stripe_price = gateway.price_retrieve(price_id)
        except gateway.StripeRequestFailed:  # no such price (a 404 from Stripe)
            return None
        djstripe_models.Price.sync_from_stripe_data(stripe_price)
        lookup_key = to_dict(stripe_price).get("lookup_key")
    return catalogue.PRICES_BY_LOOKUP_KEY.get(lookup_key or "")
