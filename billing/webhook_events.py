"""Which Stripe event types the webhook endpoint is subscribed to, and processes.

Every processed event costs a re-read of its object from Stripe (150-400 ms each on
the real API, and Stripe's rate limit); most of the ~250 types change nothing we read. We take:

- the types our receivers act on (read from dj-stripe's signals, so a receiver added in
  billing/webhooks.py or billing/notices.py is subscribed without a second list to keep), and
- the types whose dj-stripe rows our pages show (billing/selectors.py reads dj-stripe's
  Subscription, Invoice, PaymentMethod, Customer and TaxId rows; the ledger links to Checkout
  Sessions in the admin).

The endpoint is registered with this list (``WebhookEndpoint.enabled_events``; the offline
Stripe's ``--events`` in ``make run``, the bench and the soak; Stripe's dashboard or
``python manage.py stripe_webhook_events`` for a real endpoint), and a correctly signed event
of another type is answered 200 without being stored or processed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from djstripe import signals as djstripe_signals

# Prefixes of the types whose synced objects we show (see the module docstring).
SHOWN_PREFIXES = (
    "customer.subscription.",
    "customer.tax_id.",  # the billing page lists the customer's tax ids
    "invoice.",
    "payment_method.",
    "checkout.session.",
)
SHOWN_TYPES = frozenset({"customer.updated", "customer.deleted"})
OUR_MODULES = ("billing.", "subscriptions.", "activities.")


def _ours(receiver: tuple[Any, ...]) -> bool:
    # Django keeps (lookup key, weak reference or function, is-async) per receiver.
    function = receiver[1]() if hasattr(receiver[1], "__callback__") else receiver[1]
    module = getattr(function, "__module__", "") or ""
    return module.startswith(OUR_MODULES)


@cache
def acted_on() -> frozenset[str]:
    """The event types one of our receivers is connected to."""
    types = set()
    for event_type, signal in djstripe_signals.WEBHOOK_SIGNALS.items():
        for receiver in signal.receivers:
            if _ours(receiver):
                types.add(event_type)
    return frozenset(types)


@cache
def enabled_events() -> tuple[str, ...]:
    """Every type the endpoint subscribes to, sorted (Stripe's ``enabled_events``)."""
    known = [t for t in djstripe_signals.ENABLED_EVENTS if t != "*"]
    shown = {t for t in known if t.startswith(SHOWN_PREFIXES) or t in SHOWN_TYPES}
    return tuple(sorted(shown | acted_on()))


def wanted(event_type: str) -> bool:
    return event_type in enabled_events()
