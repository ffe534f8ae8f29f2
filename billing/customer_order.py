"""One Stripe customer's state is read and applied by one worker at a time.

Every path that applies Stripe's state re-reads it from Stripe first (billing/
event_objects.py for a webhook, the object our own call returned for a page). Two workers
handling two events of the same customer could still read in one order and apply in the
other: both states carry the same second on Stripe's clock (a customer who changes plan and
cancels within a second), so neither looks older, and the one read first, applied last,
leaves the account a step behind Stripe with no event left to repair it (found by the soak:
one account's ``cancel_at_period_end`` differed from Stripe's after the queue drained).

So each of those paths holds this customer's lock from its read to its commit: a transaction
-scoped PostgreSQL advisory lock, not the account row, so spends never wait on Stripe.
Whoever applies last has read last. SQLite (``make run``
and the inline test mode) writes one transaction at a time and has no such lock: nothing to do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.db import connection, transaction

from billing.stripe_data import object_id

# The first half of the two-key advisory lock: keeps these locks apart from any other use.
LOCK_NAMESPACE = 0x5354  # "ST"


def customer_serialize(customer_id: str | None) -> None:
    """Wait until no other transaction holds ``customer_id``'s lock, and hold it until this
    transaction ends. Must run inside ``transaction.atomic()``."""
    if not customer_id or connection.vendor != "postgresql":
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("customer_serialize outside a transaction would release at once")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [LOCK_NAMESPACE, customer_id]
        )


def customer_of(stripe_object: Mapping[str, Any]) -> str | None:
    """The customer a Stripe object belongs to (a customer is its own)."""
    if stripe_object.get("object") == "customer":
        return stripe_object.get("id")
    return object_id(stripe_object.get("customer"))


def event_customer(body: str) -> str | None:
    """The customer of a stored webhook delivery's object (None for a body we cannot read:
    dj-stripe refuses it later, with the error on the delivery)."""
    try:
        event = json.loads(body)
        stripe_object = event["data"]["object"]
    except (ValueError, KeyError, TypeError):
        return None
    return customer_of(stripe_object) if isinstance(stripe_object, dict) else None
