"""An event's object, read from Stripe once and stored in dj-stripe's tables.

dj-stripe's own handler re-reads the event's object, then fetches every related object it has
no row for, one call each: the customer, the default card, the payment intent and its card, a
product. Our rules then read the subscription's latest invoice, the customer's pending invoice
items, the payment's refunds and disputes. bench/task_queue.py measured 2 to 6 Stripe calls
per event; each costs 150-400 ms on the real API and counts against Stripe's rate limit.

For the objects our rules read (Checkout Sessions, subscriptions, invoices, subscription
schedules), this handler takes dj-stripe's place: one retrieve with those related objects
expanded, read as plain JSON values (``gateway.object_read``: dj-stripe reads dicts, and
building the SDK's objects cost more than the rest of the read). dj-stripe stores nested
objects from the answer instead of fetching them, and our rules find what they need in it
(billing/sync.py, billing/clawbacks.py). Other objects keep
dj-stripe's handler; a deletion too.

The object is still re-read, never taken from the event's body: see billing/webhooks.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import stripe
from django.conf import settings
from djstripe import models as djstripe_models
from djstripe import signals as djstripe_signals
from djstripe.event_handlers import (
    CrudType,
    _handle_crud_like_event,
    handle_customer_subscription_event,
    handle_other_event,
)
from djstripe.models.base import StripeModel
from djstripe.settings import djstripe_settings
from stripe._encode import _make_suitable_for_json

from billing import gateway

logger = logging.getLogger(__name__)

# The relations each object is read with: what our rules read, and what dj-stripe would
# otherwise fetch to store the row (a relation already stored costs nothing either way).
_CUSTOMER = "customer.invoice_settings.default_payment_method"
_NESTED_SUBSCRIPTION = ["subscription.default_payment_method", "subscription.latest_invoice"]
EXPANSIONS: dict[str, tuple[type[djstripe_models.StripeModel], list[str]]] = {
    "checkout.session": (
        djstripe_models.Session,
        [
            *djstripe_models.Session.expand_fields,
            _CUSTOMER,
            "payment_intent.payment_method",
            "payment_intent.latest_charge",  # billing/clawbacks.py: refunded or disputed?
            *_NESTED_SUBSCRIPTION,
        ],
    ),
    "customer.subscription": (
        djstripe_models.Subscription,
        [_CUSTOMER, "default_payment_method", "latest_invoice"],
    ),
    "invoice": (
        djstripe_models.Invoice,
        [
            *djstripe_models.Invoice.expand_fields,
            _CUSTOMER,
            "default_payment_method",
            # billing/sync.py's invoice_paid_apply applies the subscription with the invoice.
            "parent.subscription_details.subscription.default_payment_method",
        ],
    ),
    "subscription_schedule": (
        djstripe_models.SubscriptionSchedule,
        [_CUSTOMER, *_NESTED_SUBSCRIPTION],
    ),
}
_REPLACED_HANDLERS = (handle_customer_subscription_event, handle_other_event)


def _kind(event_type: str) -> str | None:
    """The EXPANSIONS key an event type's object falls under, if any."""
    for kind in EXPANSIONS:
        if event_type.startswith(kind + "."):
            return kind
    return None


# dj-stripe's handlers this one stands in for, by event type (settings.
# STRIPE_EVENT_OBJECTS_EXPANDED off calls them instead).
_REPLACED: dict[str, list[Callable[..., Any]]] = {}


def event_object_store(sender: Any, event: Any, **kwargs: Any) -> None:
    """Read the event's object from Stripe (one call) and store it with dj-stripe's sync."""
    if not settings.STRIPE_EVENT_OBJECTS_EXPANDED:
        for handler in _REPLACED.get(event.type, []):
            handler(sender=sender, event=event, **kwargs)
        return
    kind = _kind(event.type)
    data = event.data.get("object") or {}
    if kind is None or not data.get("id"):
        return  # e.g. invoice.upcoming: an invoice that does not exist yet
    model, expand = EXPANSIONS[kind]
    deleted = CrudType.determine(event=event, verb=event.verb) is CrudType.DELETED
    if deleted and model is not djstripe_models.Subscription:
        # A deleted object cannot be read back: dj-stripe removes its row.
        _handle_crud_like_event(target_cls=model, event=event)
        return
    try:
        stripe_object = gateway.object_read(model.stripe_class, data["id"], expand=expand)
    except gateway.StripeRequestFailed as exc:
        if exc.extra.get("stripe_code") != "resource_missing":
            raise
        # Forged, or deleted since: our receivers find no fresh row and skip the event.
        logger.warning("event %s: Stripe has no %s; not stored", event.id, data["id"])
        return
    model.sync_from_stripe_data(stripe_object, api_key=event.default_api_key)


def _subscription_items_store(
    cls: type[djstripe_models.StripeModel],
    target_cls: type[djstripe_models.SubscriptionItem],
    data: Any,
    subscription: djstripe_models.Subscription,
    api_key: str = djstripe_settings.STRIPE_SECRET_KEY,
) -> list[djstripe_models.SubscriptionItem]:
    """A subscription's items, each stored once: dj-stripe 2.11 gets-or-creates every item
    and then syncs it again, which for a new item is a second SELECT of the row, of its
    price and of its subscription, an UPDATE with the same values and a second read of its
    tax rates: 5 of the ~50 queries of a ``customer.subscription.created``. Its sync alone
    creates an item it has no row for and updates one it has (items removed at Stripe are
    kept, as dj-stripe keeps them: old invoices name them)."""
    items = data.get("items")
    if not items:
        return []
    return [
        target_cls.sync_from_stripe_data(item, api_key=api_key) for item in items.auto_paging_iter()
    ]


_record_from_plain_data = StripeModel._stripe_object_to_record.__func__


def _record_from_stripe_object(
    cls: type[StripeModel], data: Any, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """dj-stripe's record of an object, from the object's plain JSON values.

    dj-stripe 2.11 gets those values with ``json.loads(str(data))``. The SDK's ``__str__``
    indents its dump, and an indented dump runs in the json module's pure-Python encoder: about
    3% of a test run (cProfile of the whole suite), on every object every delivery stores. The
    same dump without the indent (the same keys, order and ``default``) runs in the C encoder
    and loads to the same values."""
    if isinstance(data, stripe.StripeObject):
        data = json.loads(
            json.dumps(data.to_dict(), sort_keys=True, default=_make_suitable_for_json)
        )
    return _record_from_plain_data(cls, data, *args, **kwargs)


def install() -> None:
    """Put ``event_object_store`` in dj-stripe's handlers' place, ahead of our receivers,
    store a subscription's items once each, and turn objects into dicts in C."""
    StripeModel._stripe_object_to_subscription_items = classmethod(_subscription_items_store)
    StripeModel._stripe_object_to_record = classmethod(_record_from_stripe_object)
    for event_type, signal in djstripe_signals.WEBHOOK_SIGNALS.items():
        if _kind(event_type) is None:
            continue
        for handler in _REPLACED_HANDLERS:
            if signal.disconnect(handler, sender=djstripe_models.Event):
                _REPLACED.setdefault(event_type, []).append(handler)
        signal.connect(event_object_store, sender=djstripe_models.Event, weak=False)


install()
