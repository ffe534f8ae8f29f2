"""Past due: what every page tells the customer, and paying the open invoice with a new card.

Stripe retries a failed renewal on its own schedule (days apart). A customer who has just
entered a new card should not wait for that: the page that the portal returns to pays the
open invoice at once with the new default card, and says whether it worked. A card changed
elsewhere (the dashboard) does the same through the ``customer.updated`` webhook.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.core import signing
from django.urls import reverse
from django.utils import timezone
from djstripe import models as djstripe_models

from billing import gateway, sync
from billing.stripe_data import (
    StripeDict,
    invoice_subscription_id,
    object_id,
    timestamp,
    to_dict,
)
from subscriptions import catalogue
from subscriptions.models import CreditAccount, SubscriptionStatus

logger = logging.getLogger(__name__)
RETURN_SALT = "billing.dunning.card-updated"


@dataclass(frozen=True)
class Dunning:
    """What the past-due banner says: the plan kept until when, and where to pay."""

    tier_name: str
    grace_until: datetime | None
    amount_cents: int
    currency: str
    # The open invoice's hosted page; until its row has synced (its event may come a moment
    # after the subscription's past_due), our page that looks it up at Stripe on the click.
    pay_url: str


@dataclass(frozen=True)
class RetryOutcome:
    paid: bool
    message: str


def open_invoice(account: CreditAccount) -> StripeDict | None:
    """The newest open invoice of the account's subscription, from the synced rows."""
    if not account.stripe_customer_id or not account.stripe_subscription_id:
        return None
    rows = (
        djstripe_models.Invoice.objects.filter(
            customer__id=account.stripe_customer_id, stripe_data__status="open"
        )
        .order_by("-created", "-djstripe_id")
        .values_list("stripe_data", flat=True)[:10]
    )
    for invoice in rows:
        if invoice_subscription_id(invoice) == account.stripe_subscription_id:
            return invoice
    return None


def dunning_for(account: CreditAccount | None) -> Dunning | None:
    """The banner's facts for a past-due account (None otherwise: one attribute read)."""
    if account is None or account.subscription_status != SubscriptionStatus.PAST_DUE:
        return None
    invoice = open_invoice(account) or {}
    # The plan being paid for: after the grace the account is on free, the plan is not.
    entry = catalogue.PRICES_BY_LOOKUP_KEY.get(account.stripe_price_lookup_key)
    plan = entry.tier if entry and entry.tier else catalogue.TIERS[account.tier]
    return Dunning(
        tier_name=plan.name,
        grace_until=account.grace_until if account.in_grace(timezone.now()) else None,
        amount_cents=int(invoice.get("amount_remaining") or invoice.get("amount_due") or 0),
        currency=invoice.get("currency") or "usd",
        pay_url=invoice.get("hosted_invoice_url") or reverse("billing-pay-now"),
    )


def open_invoice_page(account: CreditAccount) -> str:
    """The hosted page of the invoice the subscription owes, read from Stripe now ("" when
    nothing is owed): "Pay now" before the invoice's own event has reached us."""
    if not account.stripe_subscription_id:
        return ""
    subscription = to_dict(
        gateway.subscription_retrieve(account.stripe_subscription_id, expand=["latest_invoice"])
    )
    invoice = subscription.get("latest_invoice")
    if not isinstance(invoice, dict) or invoice.get("status") != "open":
        return ""
    return str(invoice.get("hosted_invoice_url") or "")


def return_token(account: CreditAccount) -> str:
    """A signed mark for the portal's return URL: only a return from our portal session
    for this account pays (a link elsewhere cannot make the page charge a card)."""
    return signing.dumps(account.pk, salt=RETURN_SALT)


def return_token_valid(account: CreditAccount, token: str) -> bool:
    try:
        return signing.loads(token, salt=RETURN_SALT, max_age=24 * 3600) == account.pk
    except signing.BadSignature:
        return False


def open_invoice_retry(*, account: CreditAccount) -> RetryOutcome | None:
    """Pay the account's open invoice now with the customer's default card (None: nothing
    to pay). Idempotent per invoice and card: a repeated return or webhook charges once."""
    invoice = open_invoice(account)
    if invoice is None or not account.stripe_customer_id:
        return None
    customer = to_dict(gateway.customer_retrieve(account.stripe_customer_id))
    card = object_id((customer.get("invoice_settings") or {}).get("default_payment_method"))
    if not card:
        return RetryOutcome(False, "There is no card on file yet: add one to pay the invoice.")
    try:
        paid = to_dict(
            gateway.invoice_pay(
                invoice["id"],
                payment_method=card,
                idempotency_key=f"dunning-pay:{invoice['id']}:{card}",
            )
        )
    except gateway.CardDeclined as exc:
        return RetryOutcome(False, f"The new card was declined: {exc.message}")
    except gateway.StripeRequestFailed as exc:
        current = to_dict(gateway.invoice_retrieve(invoice["id"]))
        if current.get("status") != "paid":
            logger.warning("invoice %s: paying with %s failed: %s", invoice["id"], card, exc)
            return RetryOutcome(False, f"The payment did not go through: {exc.message}")
        paid = current  # paid meanwhile (Stripe's own retry, another tab)
    # The page is right at once: the same rule the invoice.paid webhook applies (idempotent
    # by the invoice, so the webhook changes nothing when it lands).
    paid_at = int((paid.get("status_transitions") or {}).get("paid_at") or paid["created"])
    sync.invoice_paid_apply(paid, event_id=f"pay:{paid['id']}", observed_at=timestamp(paid_at))
    return RetryOutcome(True, "Payment received: your plan is active again.")


def card_changed_apply(customer_id: str) -> RetryOutcome | None:
    """A customer's default card changed at Stripe: pay a past-due account's open invoice."""
    account = CreditAccount.objects.filter(stripe_customer_id=customer_id).first()
    if account is None or dunning_for(account) is None:
        return None
    outcome = open_invoice_retry(account=account)
    if outcome is not None and not outcome.paid:
        logger.info("customer %s: new card, open invoice still unpaid: %s", customer_id, outcome)
    return outcome
