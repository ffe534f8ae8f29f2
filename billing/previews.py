"""Stripe's own figures before anything is charged: invoice previews (issue 16).

``Invoice.create_preview`` with the same items, proration behaviour and proration date as the
change ``billing.services.subscription_change_plan`` then makes, so the amount the customer
confirms is the amount charged; without changes it is the subscription's upcoming invoice
("next payment"). Previews create nothing at Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone

from billing import gateway
from billing.catalogue_sync import CURRENCY
from billing.services import change_applies_now, change_details, live_subscription, plan_entry
from billing.stripe_data import (
    StripeDict,
    object_id,
    price_entry,
    subscription_price,
    timestamp,
    to_dict,
)
from subscriptions.models import CreditAccount


@dataclass(frozen=True)
class ChargePreview:
    """Stripe's preview of a plan change: what is charged today and what next, and when."""

    applies_now: bool
    due_today_cents: int
    next_amount_cents: int | None  # None: no next invoice (the plan ends)
    next_payment_on: datetime | None
    currency: str
    proration_date: int


def _invoice_due_date(invoice: StripeDict) -> datetime | None:
    """When Stripe will charge a previewed invoice: its next payment attempt, else the start
    of the period its subscription lines bill."""
    if invoice.get("next_payment_attempt"):
        return timestamp(int(invoice["next_payment_attempt"]))
    return _latest_line_period(invoice, "start")


def _latest_line_period(invoice: StripeDict, edge: str) -> datetime | None:
    """The latest start or end of the periods an invoice's lines bill."""
    latest = max(
        (
            int((line.get("period") or {}).get(edge) or 0)
            for line in (invoice.get("lines") or {}).get("data") or []
        ),
        default=0,
    )
    return timestamp(latest) if latest else None


def plan_change_quote(
    *, user: User, tier: str, interval: str, now: datetime | None = None
) -> ChargePreview | None:
    """Stripe's own preview of moving to ``tier``/``interval`` (None: nothing to change).

    The preview carries the same items, proration behaviour and proration date as the change
    ``subscription_change_plan`` then makes with that date, so what it charges is the preview.
    """
    entry = plan_entry(tier, interval)
    data = live_subscription(user)
    current = price_entry(subscription_price(data))
    if current is not None and current.lookup_key == entry.lookup_key:
        return None
    applies_now = change_applies_now(current, entry)
    proration_date = int((now or timezone.now()).timestamp())
    details = change_details(data, entry, applies_now=applies_now, proration_date=proration_date)
    if data.get("cancel_at_period_end") or data.get("cancel_at"):
        details["cancel_at_period_end"] = False  # the change resumes the plan first
    customer = object_id(data.get("customer")) or ""
    first = to_dict(
        gateway.invoice_preview(
            customer=customer, subscription=data["id"], subscription_details=details
        )
    )
    if not applies_now:  # nothing now: the preview is the renewal at the new price
        return ChargePreview(
            applies_now=False,
            due_today_cents=0,
            next_amount_cents=int(first.get("amount_due") or 0),
            next_payment_on=_invoice_due_date(first),
            currency=str(first.get("currency") or CURRENCY),
            proration_date=proration_date,
        )
    next_amount: int | None = None
    next_on: datetime | None = None
    if current is not None and current.interval == entry.interval:
        # After the upgrade's invoice, the renewal at the new price: Stripe's upcoming invoice
        # for the changed subscription (the prorations are on today's invoice).
        renewal = dict(details, proration_behavior="none")
        renewal.pop("proration_date")
        upcoming = to_dict(
            gateway.invoice_preview(
                customer=customer, subscription=data["id"], subscription_details=renewal
            )
        )
        next_amount = int(upcoming.get("amount_due") or 0)
        next_on = _invoice_due_date(upcoming)
    else:
        # A new interval restarts the billing cycle today: today's invoice bills the new
        # period, and the next invoice is the new price when that period ends.
        next_amount = entry.amount_cents
        next_on = _latest_line_period(first, "end")
    return ChargePreview(
        applies_now=True,
        due_today_cents=int(first.get("amount_due") or 0),
        next_amount_cents=next_amount,
        next_payment_on=next_on,
        currency=str(first.get("currency") or CURRENCY),
        proration_date=proration_date,
    )


@dataclass(frozen=True)
class NextPayment:
    amount_cents: int
    currency: str
    on: datetime | None


def next_payment_preview(*, account: CreditAccount) -> NextPayment | None:
    """Stripe's upcoming invoice for the subscription (None when there is none: it ends).

    Cached for a minute per account state, so reloading /billing/ does not ask Stripe each
    time; any change to the account (ours or a webhook's) asks again.
    """
    if not account.has_live_subscription or not account.stripe_customer_id:
        return None
    if account.cancel_at_period_end:
        return None  # it ends with the period: Stripe would answer invoice_upcoming_none
    cache_key = (
        f"next-payment:{account.stripe_subscription_id}:{account.version}:"
        f"{account.cancel_at_period_end}:{account.pending_tier}"
    )
    cached = cache.get(cache_key)
    if cached is not None:
        return cached or None
    try:
        upcoming = to_dict(
            gateway.invoice_preview(
                customer=account.stripe_customer_id, subscription=account.stripe_subscription_id
            )
        )
    except gateway.StripeRequestFailed as exc:
        if exc.extra.get("stripe_code") != "invoice_upcoming_none":
            raise
        cache.set(cache_key, False, 60)
        return None
    result = NextPayment(
        amount_cents=int(upcoming.get("amount_due") or 0),
        currency=str(upcoming.get("currency") or "usd"),
        on=_invoice_due_date(upcoming),
    )
    cache.set(cache_key, result, 60)
    return result
