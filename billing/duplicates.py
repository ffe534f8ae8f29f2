"""One live subscription per customer.

Two Checkouts paid in two tabs at the same instant, or a subscription made in the dashboard,
can leave a customer with two live subscriptions, both billed. The rule: the oldest live
subscription (Stripe's ``created``) is kept; on a tie, the one the account is already on. Every
other one is cancelled now and everything it was paid is refunded in full, and the user is told
in the activity feed. Webhooks (``billing.sync``) and ``reconcile_billing --fix`` both come here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User

from activities.models import ActivityType
from activities.services import activity_record
from billing import gateway
from billing.stripe_data import StripeDict, object_id, price_entry, subscription_price, to_dict
from subscriptions.models import LIVE_STATUSES, CreditAccount

logger = logging.getLogger(__name__)


def kept_subscription(user: User, subscription: StripeDict) -> StripeDict:
    """One live subscription per customer: the subscription to apply for this one.

    Only asked when a live subscription other than the account's own shows up (a second
    Checkout paid in another tab, one made in the dashboard): the customer's live
    subscriptions are listed, the oldest (first paid) is kept, and every other one is
    cancelled with a full refund (``duplicates_end``).
    """
    if subscription.get("status") not in LIVE_STATUSES:
        return subscription
    # Read with the user when it came from ``billing.sync.user_for_customer``; else one query.
    account: CreditAccount | None = getattr(user, "credit_account", None)
    if account is None or account.stripe_subscription_id in {"", subscription["id"]}:
        return subscription
    customer_id = object_id(subscription.get("customer"))
    if not customer_id:
        return subscription
    live = [
        to_dict(s)
        for s in gateway.subscriptions_list(customer_id)
        if to_dict(s).get("status") in LIVE_STATUSES
    ]
    if len(live) <= 1:
        return subscription
    live = live_in_keeping_order(live, account.stripe_subscription_id)
    duplicates_end(user, kept=live[0], duplicates=live[1:])
    return live[0]


def live_in_keeping_order(live: list[dict[str, Any]], ours: str) -> list[dict[str, Any]]:
    """The rule for two live subscriptions: the oldest (Stripe's ``created``) is kept; on a
    tie (two Checkouts paid in the same second), the one the account is already on."""
    return sorted(live, key=lambda s: (int(s.get("created") or 0), s["id"] != ours, s["id"]))


def duplicates_end(user: User, *, kept: StripeDict, duplicates: Sequence[StripeDict]) -> int:
    """Cancel each duplicate subscription now and refund everything it was paid, in full.

    Every Stripe call carries a key derived from the duplicate's id, so a retried webhook or
    a second reconcile run replays Stripe's first answer instead of refunding twice.
    Returns the cents refunded by this call.
    """
    refunded = 0
    kept_entry = price_entry(subscription_price(kept))
    kept_name = kept_entry.tier.name if kept_entry and kept_entry.tier else "your plan"
    for duplicate in duplicates:
        dup_id = duplicate["id"]
        if duplicate.get("status") in LIVE_STATUSES:
            gateway.subscription_cancel_now(dup_id, idempotency_key=f"duplicate-cancel:{dup_id}")
        dup_refund = 0
        for stripe_invoice in gateway.invoices_for_subscription(dup_id):
            invoice = to_dict(stripe_invoice)
            if invoice.get("status") != "paid" or not invoice.get("amount_paid"):
                continue
            for stripe_payment in gateway.invoice_payments(invoice["id"]):
                payment = to_dict(stripe_payment)
                pi = (payment.get("payment") or {}).get("payment_intent")
                if payment.get("status") != "paid" or not pi:
                    continue
                try:
                    refund = gateway.refund_create(
                        payment_intent=object_id(pi) or "",
                        metadata={"hrvstr_reason": "duplicate_subscription", "sub": dup_id},
                        idempotency_key=f"duplicate-refund:{object_id(pi)}",
                    )
                except gateway.StripeRequestFailed as exc:
                    if exc.extra.get("stripe_code") != "charge_already_refunded":
                        raise
                    continue
                dup_refund += int(refund.amount or 0)
        refunded += dup_refund
        entry = price_entry(subscription_price(duplicate))
        name = entry.tier.name if entry and entry.tier else "second"
        logger.warning(
            "customer %s: second live subscription %s cancelled, %s cents refunded; kept %s",
            object_id(duplicate.get("customer")),
            dup_id,
            dup_refund,
            kept["id"],
        )
        activity_record(
            user=user,
            activity_type=ActivityType.SUBSCRIPTION_CANCELED,
            title=f"Duplicate {name} subscription cancelled and refunded",
            description=(
                f"You already had a {kept_name} subscription, so the {name} subscription "
                f"started later was cancelled and its payment of ${dup_refund / 100:.2f} "
                "refunded in full. Change your plan from the billing page instead."
            ),
            dedupe_key=f"duplicate:{dup_id}",
        )
    return refunded
