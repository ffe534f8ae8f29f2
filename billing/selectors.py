"""Reads of billing state for the SPA and the pages (the subscription, invoices, cards).

They read dj-stripe's mirror of Stripe (kept current by the webhooks), so a page view costs no
Stripe API call; only a subscription the mirror has not seen yet is fetched from Stripe.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from djstripe import models as djstripe_models

from billing import gateway
from billing.stripe_data import (
    price_entry,
    subscription_period,
    subscription_price,
    timestamp,
    to_dict,
)
from subscriptions.services import account_get


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def subscription_for_user(*, user: AbstractBaseUser) -> dict[str, Any] | None:
    """The current subscription in the SPA's field names, or None."""
    account = account_get(user=user)
    if not account.stripe_subscription_id:
        return None
    mirrored = (
        djstripe_models.Subscription.objects.filter(id=account.stripe_subscription_id)
        .values_list("stripe_data", flat=True)
        .first()
    )
    data = mirrored or to_dict(gateway.subscription_retrieve(account.stripe_subscription_id))
    price = subscription_price(data) or {}
    entry = price_entry(price)
    period = subscription_period(data)
    return {
        "id": data["id"],
        "status": data["status"],
        "plan": entry.tier.key if entry and entry.tier else price.get("lookup_key"),
        "amount": price.get("unit_amount"),
        "currency": price.get("currency"),
        "interval": (price.get("recurring") or {}).get("interval"),
        "currentPeriodStart": _iso(period[0]) if period else None,
        "currentPeriodEnd": _iso(period[1]) if period else None,
        "cancelAtPeriodEnd": bool(data.get("cancel_at_period_end")),
        "pendingTier": account.pending_tier or None,
    }


def invoices_recent(*, user: AbstractBaseUser, limit: int = 10) -> list[dict[str, Any]]:
    account = account_get(user=user)
    if not account.stripe_customer_id:
        return []
    invoices = list(
        djstripe_models.Invoice.objects.filter(customer__id=account.stripe_customer_id)
        .order_by("-created")
        .values_list("stripe_data", flat=True)[:limit]
    )
    return [
        {
            "id": invoice["id"],
            "amount": invoice.get("amount_paid") or invoice.get("amount_due") or 0,
            "currency": invoice.get("currency"),
            "status": invoice.get("status"),
            "date": _iso(timestamp(invoice.get("created"))),
            "description": invoice.get("description")
            or ", ".join(
                line.get("description") or ""
                for line in (invoice.get("lines") or {}).get("data", [])[:3]
            ),
            "downloadUrl": invoice.get("hosted_invoice_url") or invoice.get("invoice_pdf"),
        }
        for invoice in invoices
    ]


def payment_methods(*, user: AbstractBaseUser) -> list[dict[str, Any]]:
    account = account_get(user=user)
    if not account.stripe_customer_id:
        return []
    methods = list(
        djstripe_models.PaymentMethod.objects.filter(customer__id=account.stripe_customer_id)
        .order_by("-created")
        .values_list("stripe_data", flat=True)[:10]
    )
    return [
        {
            "id": method["id"],
            "type": method.get("type"),
            "brand": (method.get("card") or {}).get("brand"),
            "last4": (method.get("card") or {}).get("last4"),
            "expMonth": (method.get("card") or {}).get("exp_month"),
            "expYear": (method.get("card") or {}).get("exp_year"),
        }
        for method in methods
    ]
