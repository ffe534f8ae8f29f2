"""Stripe events that change no credits but that the customer must hear about."""

from __future__ import annotations

from datetime import UTC, datetime

from activities.models import ActivityType
from activities.notifications import email_once
from activities.services import activity_record
from billing.dunning import dunning_for
from billing.stripe_data import StripeDict, object_id, price_entry, subscription_price
from billing.sync import user_for_customer
from hrvstr.formatting import cents


def payment_action_required_apply(invoice: StripeDict, *, event_id: str) -> None:
    """A renewal waits for the customer's 3-D Secure confirmation: say where to give it.

    The subscription goes past_due meanwhile (its own event keeps the tier for the grace
    period); the confirmed payment arrives as invoice.paid like any other.
    """
    if invoice.get("status") != "open":
        return  # confirmed (or voided) since: nothing to ask for
    user = user_for_customer(object_id(invoice.get("customer")))
    if user is None:
        return
    link = invoice.get("hosted_invoice_url") or ""
    activity_record(
        user=user,
        activity_type=ActivityType.PAYMENT_FAILED,
        title="Confirm your payment",
        description=f"Your bank asks you to confirm the payment for your plan: {link}".strip(),
        dedupe_key=f"action-required:{invoice['id']}",
    )


def trial_ending_apply(subscription: StripeDict, *, event_id: str) -> None:
    """Stripe's notice three days before a trial ends: say when the first charge comes, and
    how much, while the customer can still cancel. Nothing changes on the account."""
    trial_end = subscription.get("trial_end")
    if subscription.get("status") != "trialing" or not trial_end:
        return  # converted, cancelled or ended since the notice was sent
    user = user_for_customer(object_id(subscription.get("customer")))
    if user is None:
        return
    price = subscription_price(subscription) or {}
    entry = price_entry(price)
    plan = entry.tier.name if entry and entry.tier else "plan"
    amount = cents(price.get("unit_amount") or 0, price.get("currency") or "usd")
    activity_record(
        user=user,
        activity_type=ActivityType.TRIAL_ENDING,
        title=f"Your {plan} trial ends soon",
        description=(
            f"Your trial ends on {datetime.fromtimestamp(trial_end, UTC):%-d %b %Y}: your card "
            f"will be charged {amount} then unless you cancel before."
        ),
        dedupe_key=f"trial-ending:{subscription['id']}:{trial_end}",
    )


def receipt_send(invoice: StripeDict) -> None:
    """A receipt e-mail for a paid invoice (a plan's or a bundle's), once per invoice."""
    from billing.selectors import entries_by_price_id, invoice_lines

    amount_paid = int(invoice.get("amount_paid") or 0)
    if invoice.get("status") != "paid" or amount_paid <= 0:
        return
    user = user_for_customer(object_id(invoice.get("customer")))
    if user is None:
        return
    currency = invoice.get("currency") or "usd"
    data = dict(invoice)
    lines = [
        {"description": line.description, "amount_text": cents(line.amount, currency)}
        for line in invoice_lines(data, entries_by_price_id([data]))
    ]
    paid_at = (invoice.get("status_transitions") or {}).get("paid_at")
    email_once(
        user=user,
        to=invoice.get("customer_email") or "",  # the billing e-mail, as Stripe's receipts
        key=f"receipt:{invoice['id']}",
        kind="receipt",
        context={
            "amount": cents(amount_paid, currency),
            "number": invoice.get("number") or "",
            "paid_on": datetime.fromtimestamp(paid_at, UTC) if paid_at else None,
            "lines": lines,
            "hosted_url": invoice.get("hosted_invoice_url") or "",
            "pdf_url": invoice.get("invoice_pdf") or "",
        },
    )


def payment_failed_send(invoice: StripeDict) -> None:
    """The failed payment, with the pay link: once per invoice (not per retry)."""
    if invoice.get("status") != "open":
        return  # paid or voided since: nothing to ask for
    user = user_for_customer(object_id(invoice.get("customer")))
    if user is None:
        return
    account = getattr(user, "credit_account", None)
    plan = dunning_for(account) if account is not None else None
    email_once(
        user=user,
        to=invoice.get("customer_email") or "",
        key=f"payment-failed:{invoice['id']}",
        kind="payment_failed",
        context={
            "amount": cents(
                int(invoice.get("amount_remaining") or invoice.get("amount_due") or 0),
                invoice.get("currency") or "usd",
            ),
            "pay_url": invoice.get("hosted_invoice_url") or "",
            "tier_name": plan.tier_name if plan else "",
            "grace_until": plan.grace_until if plan else None,
        },
    )
