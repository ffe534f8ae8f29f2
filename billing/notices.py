"""Stripe events that change no credits but that the customer must hear about."""

from __future__ import annotations

from activities.models import ActivityType
from activities.services import activity_record
from billing.stripe_data import StripeDict, object_id
from billing.sync import user_for_customer


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
