"""The customer back from Checkout: apply their session now instead of waiting for its webhook.

The success page fetches its own Checkout Session from Stripe (one call) and applies it through
the very rules the webhooks use (billing/sync.py), under the same idempotency keys: a bundle's
``checkout:<session>`` and the paid first invoice's ``invoice:<invoice>``. Whichever comes
first, the page or the queued webhook, grants; the other finds the ledger row and does nothing.
So the customer never waits on the webhook queue, however long it is.
"""

from __future__ import annotations

import logging
from datetime import datetime

import stripe
from django.contrib.auth.models import User
from django.db import DatabaseError
from djstripe import models as djstripe_models

from billing import gateway, sync
from billing.stripe_data import object_id, to_dict
from hrvstr.errors import DomainError
from subscriptions.models import CreditAccount

logger = logging.getLogger(__name__)


def checkout_return_apply(*, user: User, session_id: str, now: datetime) -> bool:
    """Apply the paid Checkout Session ``session_id`` if it is ``user``'s. Returns whether it
    was applied (False: not found, not theirs, not paid yet, or Stripe did not answer)."""
    if not session_id.startswith("cs_") or not gateway.is_configured():
        return False
    try:
        stripe_session = gateway.checkout_session_retrieve_on_return(session_id)
    except DomainError as exc:  # unreachable, or no such session: the webhook will do it
        logger.info("checkout return %s: not fetched (%s)", session_id, exc)
        return False
    session = to_dict(stripe_session)
    customer_id = (
        CreditAccount.objects.filter(user=user).values_list("stripe_customer_id", flat=True).first()
    )
    theirs = (customer_id and object_id(session.get("customer")) == customer_id) or str(
        session.get("client_reference_id") or ""
    ) == str(user.pk)
    if not theirs:
        logger.warning("checkout return %s: not user %s's session", session_id, user.pk)
        return False
    if session.get("status") != "complete" or session.get("payment_status") not in sync.PAID:
        return False
    source = f"checkout-return:{session_id}"
    invoice = session.get("invoice")
    if session.get("mode") == "payment":
        sync.checkout_completed_apply(session, event_id=source)
        if isinstance(invoice, dict):
            # The bundle's receipt is on the billing page the customer goes to next, not
            # when the invoice's webhooks arrive (they write the same row again). dj-stripe
            # takes the SDK's object (its decimals as Stripe sent them), not our dict.
            try:
                djstripe_models.Invoice.sync_from_stripe_data(stripe_session["invoice"])
            except (stripe.StripeError, DatabaseError) as exc:  # the webhook writes it later
                logger.warning("checkout return %s: receipt not mirrored (%r)", session_id, exc)
        return True
    if session.get("mode") == "subscription" and isinstance(invoice, dict):
        if invoice.get("status") != "paid":
            return False
        sync.invoice_paid_apply(invoice, event_id=source, observed_at=now)
        return True
    return False
