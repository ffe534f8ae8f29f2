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
from collections.abc import Callable, Mapping

from activities.models import LedgerEntry, LedgerKind
from billing import gateway
from billing.stripe_data import StripeDict, object_id, to_dict
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


def owed_cents(payment_intent: str | StripeDict) -> int | None:
    """Cents of a payment that went back to the customer: refunds, and dispute funds withdrawn
    and not reinstated (from the dispute's balance transactions; an inquiry has none).

    None when Stripe has no successful payment at all (a purchase nobody paid for): all of it.
    ``payment_intent`` is an id, or the intent as just read from Stripe with its latest charge
    expanded (a Checkout Session's, billing/event_objects.py): when that charge has no refund
    and no dispute, nothing is owed and Stripe is not asked three more times.
    """
    if isinstance(payment_intent, str) or not isinstance(
        payment_intent.get("latest_charge"), Mapping
    ):
        try:
            intent = to_dict(gateway.payment_intent_retrieve(object_id(payment_intent) or ""))
        except gateway.StripeRequestFailed as exc:
            if exc.extra.get("stripe_code") != "resource_missing":
                raise
            return None
    else:
        intent = dict(payment_intent)
    if intent.get("status") != "succeeded":
        return None
    charge = intent.get("latest_charge")
    # Stripe counts a refund in its charge's amount_refunded from its creation (and takes a
    # failed one out again), and marks a charge disputed from the dispute's creation.
    if (
        isinstance(charge, Mapping)
        and not charge.get("amount_refunded")
        and not charge.get("disputed")
    ):
        return 0
    payment_intent_id = intent["id"]
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
    return _settle(purchase, lambda: owed_cents(payment_intent_id))


def purchase_clawback_settle(purchase: LedgerEntry, *, owed: int | None) -> LedgerEntry | None:
    """``purchase_clawback_sync`` for a purchase in hand (a Checkout's, just recorded), with
    ``owed_cents`` read already: before the caller locked the account (no row lock is held
    across a Stripe call, so the same customer's spends never wait on Stripe), and the row
    is not looked up again."""
    return _settle(purchase, lambda: owed)


def purchase_unpaid_reverse(*, user_id: int, source: str) -> LedgerEntry | None:
    """Take back (as far as unspent) a purchase Stripe has no payment for (reconcile --fix)."""
    purchase = LedgerEntry.objects.filter(
        user_id=user_id, kind=LedgerKind.PURCHASE, source=source
    ).first()
    if purchase is None:
        return None
    payment_intent_id = purchase.details.get("payment_intent")
    if payment_intent_id:
        # The same rule as every refund event, so a later event cannot give it back.
        return purchase_clawback_sync(payment_intent_id=payment_intent_id)
    return _settle(purchase, lambda: None)


def _settle(purchase: LedgerEntry, owed: Callable[[], int | None]) -> LedgerEntry | None:
    amount = int(purchase.details.get("amount_cents") or 0)
    credits = purchase.purchased_delta
    if credits <= 0:
        return None

    def target() -> int:
        cents = owed()
        if cents is None:  # nothing was paid: all of it
            return credits
        if amount <= 0:
            return 0  # a free bundle (100% promotion code): no refund can take anything
        return credits * min(cents, amount) // amount

    label = purchase.reason.lower() or "credits"
    return services.credits_clawback_settle(
        user=purchase.user,
        source=purchase.source,
        target=target,
        reason=f"Refund of {label}",
        restore_reason=f"Refund or dispute of {label} reversed",
    )
