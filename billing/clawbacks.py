"""What refunds and disputes take back from a credit bundle, decided by Stripe's current word.

Every refund or dispute event for a bundle's payment comes here, whatever it says: the bundle's
payment is read again from Stripe (its refunds and disputes) and the clawback is brought to
what that state calls for. So an inquiry (no money moved) takes nothing, a chargeback takes the
disputed share when its funds are withdrawn, a won dispute (funds reinstated) gives back what
was taken, a refund that later fails gives its credits back, and events in any order, late or
twice, end in the same place.
"""

from __future__ import annotations

import logging

from activities.models import LedgerEntry, LedgerKind
from billing import gateway
from billing.stripe_data import to_dict
from subscriptions import services

logger = logging.getLogger(__name__)

# Refunds in these states have moved (or are moving) the money back to the customer.
REFUND_COUNTS = {"pending", "requires_action", "succeeded"}


def purchase_for_payment_intent(payment_intent_id: str | None) -> LedgerEntry | None:
    if not payment_intent_id:
        return None
    return LedgerEntry.objects.filter(
        kind=LedgerKind.PURCHASE, details__payment_intent=payment_intent_id
    ).first()


def owed_cents(payment_intent_id: str) -> int:
    """Cents of a payment that went back to the customer: refunds, and dispute funds withdrawn
    and not reinstated (from the dispute's balance transactions; an inquiry has none)."""
    refunded = sum(
        int(refund.get("amount") or 0)
        for refund in map(to_dict, gateway.refunds_for_payment_intent(payment_intent_id))
        if refund.get("status") in REFUND_COUNTS
    )
    withdrawn = 0
    for dispute in map(to_dict, gateway.disputes_for_payment_intent(payment_intent_id)):
        moves = dispute.get("balance_transactions") or []
        withdrawn -= sum(int(txn.get("amount") or 0) for txn in moves if isinstance(txn, dict))
    return refunded + max(withdrawn, 0)


def purchase_clawback_sync(*, payment_intent_id: str | None) -> LedgerEntry | None:
    """Bring a bundle's clawback in line with its payment's refunds and disputes on Stripe."""
    purchase = purchase_for_payment_intent(payment_intent_id)
    if purchase is None or not payment_intent_id:
        return None  # not a credit bundle (a subscription invoice), or not bought yet
    amount = int(purchase.details.get("amount_cents") or 0)
    credits = purchase.purchased_delta
    if amount <= 0 or credits <= 0:
        logger.warning("purchase %s has no amount to share a refund by", purchase.source)
        return None

    def target() -> int:
        return credits * min(owed_cents(payment_intent_id), amount) // amount

    label = purchase.reason.lower() or "credits"
    return services.credits_clawback_settle(
        user=purchase.user,
        source=purchase.source,
        target=target,
        reason=f"Refund of {label}",
        restore_reason=f"Refund or dispute of {label} reversed",
    )
