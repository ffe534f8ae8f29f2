"""Stripe events that change no credits but that the customer must hear about."""

from __future__ import annotations

from datetime import UTC, datetime

from activities.models import ActivityType
from activities.services import activity_record
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
