"""dj-stripe receivers: each applies the object Stripe confirmed and calls one function.

They run inside dj-stripe's transaction for the event (the Event row is inserted first, so a
duplicate delivery never reaches them); an exception rolls everything back and answers 500,
and Stripe retries.

An event's body is a hint, never the truth: it is signed with the webhook secret only, which
travels through proxies and logs. The event's object is re-read from Stripe with our API key
and stored before our receivers run (billing/event_objects.py: one call, with what our rules
read expanded; dj-stripe's handler for other objects); a receiver applies only that copy.
When Stripe has no such object (a forged event, or one about something deleted since), it is
not stored, and so we skip it too: the event is logged and acknowledged without effect.
"""

from __future__ import annotations

import logging
from typing import Any

from djstripe import models as djstripe_models
from djstripe.event_handlers import djstripe_receiver

# event_objects first: it stores the event's object before any receiver below reads it.
from billing import event_objects  # noqa: F401  isort: skip
from billing import dunning, gateway, notices, sync
from billing.stripe_data import object_id, to_dict

logger = logging.getLogger(__name__)


def confirmed(model: type[djstripe_models.StripeModel], event: Any) -> dict[str, Any] | None:
    """The object as re-read from Stripe and stored for this event, else None.

    dj-stripe stores the Event row, then syncs the object (``djstripe_updated`` is set on
    every save); a row not saved since the event was stored is not Stripe's answer to it
    (the re-fetch found nothing), so its older copy is not used either. Both times are ours.
    """
    object_id = (event.data.get("object") or {}).get("id")
    row = (
        model.objects.filter(id=object_id).values("stripe_data", "djstripe_updated").first()
        if object_id
        else None
    )
    if row is None or row["djstripe_updated"] < event.djstripe_created:
        logger.warning(
            "event %s (%s): Stripe did not confirm %s; acknowledged without effect",
            event.id,
            event.type,
            object_id,
        )
        return None
    return row["stripe_data"]


def refetched_subscription(event: Any, subscription_id: str) -> dict[str, Any] | None:
    """A subscription the event's object names, read from Stripe."""
    try:
        return to_dict(gateway.subscription_retrieve(subscription_id))
    except gateway.StripeRequestFailed as exc:
        if exc.extra.get("stripe_code") != "resource_missing":
            raise
        logger.warning("event %s: no subscription %s at Stripe; ignored", event.id, subscription_id)
        return None


@djstripe_receiver(["checkout.session.completed", "checkout.session.async_payment_succeeded"])
def on_checkout_paid(sender: Any, event: Any, **kwargs: Any) -> None:
    if (session := confirmed(djstripe_models.Session, event)) is not None:
        sync.checkout_completed_apply(session, event_id=event.id)


@djstripe_receiver("checkout.session.async_payment_failed")
def on_checkout_payment_failed(sender: Any, event: Any, **kwargs: Any) -> None:
    if (session := confirmed(djstripe_models.Session, event)) is not None:
        sync.checkout_payment_failed_apply(session, event_id=event.id)


def _subscription_apply(subscription: dict[str, Any], event: Any) -> None:
    """Apply a subscription Stripe confirmed for ``event``, once per event."""
    sync.subscription_apply(
        subscription,
        observed_at=event.created,
        idempotency_key=f"sub:{subscription['id']}:{event.id}",
        source=event.id,
    )


@djstripe_receiver(
    [
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
    ]
)
def on_subscription_changed(sender: Any, event: Any, **kwargs: Any) -> None:
    # A deleted subscription too: Stripe still returns it (cancelled), and its row stays.
    if (subscription := confirmed(djstripe_models.Subscription, event)) is not None:
        _subscription_apply(subscription, event)


@djstripe_receiver(
    [
        "subscription_schedule.created",
        "subscription_schedule.updated",
        "subscription_schedule.released",
        "subscription_schedule.canceled",
        "subscription_schedule.completed",
        "subscription_schedule.aborted",
    ]
)
def on_schedule_changed(sender: Any, event: Any, **kwargs: Any) -> None:
    """A scheduled plan change (ours is a downgrade at the period end) is in the schedule's
    phases: editing them changes no field of the subscription, so Stripe sends no
    ``customer.subscription.updated`` for it. Without this, a page that died between making
    the schedule and applying it (found by the soak) left "Changes to ..." unsaid for good."""
    if (schedule := confirmed(djstripe_models.SubscriptionSchedule, event)) is None:
        return
    subscription = schedule.get("subscription")  # read with the schedule (event_objects)
    if not isinstance(subscription, dict):
        # A released schedule names the subscription it let go of, unexpanded.
        subscription_id = object_id(subscription or schedule.get("released_subscription"))
        subscription = refetched_subscription(event, subscription_id) if subscription_id else None
    if subscription is not None:
        _subscription_apply(subscription, event)


@djstripe_receiver("customer.deleted")
def on_customer_deleted(sender: Any, event: Any, **kwargs: Any) -> None:
    customer_id = (event.data.get("object") or {}).get("id")
    if customer_id:
        sync.customer_deleted_apply(customer_id, event_id=event.id)


@djstripe_receiver("invoice.paid")
def on_invoice_paid(sender: Any, event: Any, **kwargs: Any) -> None:
    if (invoice := confirmed(djstripe_models.Invoice, event)) is not None:
        sync.invoice_paid_apply(invoice, event_id=event.id, observed_at=event.created)
        notices.receipt_send(invoice)


@djstripe_receiver("invoice.payment_failed")
def on_invoice_payment_failed(sender: Any, event: Any, **kwargs: Any) -> None:
    if (invoice := confirmed(djstripe_models.Invoice, event)) is not None:
        notices.payment_failed_send(invoice)


@djstripe_receiver("charge.refunded")
def on_charge_refunded(sender: Any, event: Any, **kwargs: Any) -> None:
    if (charge := confirmed(djstripe_models.Charge, event)) is not None:
        sync.charge_refunded_apply(charge, event_id=event.id)


@djstripe_receiver(
    [
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "charge.dispute.closed",
    ]
)
def on_dispute_changed(sender: Any, event: Any, **kwargs: Any) -> None:
    if (dispute := confirmed(djstripe_models.Dispute, event)) is not None:
        sync.dispute_apply(dispute, event_id=event.id)


@djstripe_receiver(["refund.created", "refund.updated", "refund.failed", "charge.refund.updated"])
def on_refund_changed(sender: Any, event: Any, **kwargs: Any) -> None:
    # dj-stripe does not sync these (a charge.refund.* event carries a refund): the payment's
    # refunds are read from Stripe again in billing.clawbacks.
    sync.refund_changed_apply(event.data["object"], event_id=event.id)


@djstripe_receiver("customer.subscription.trial_will_end")
def on_trial_will_end(sender: Any, event: Any, **kwargs: Any) -> None:
    if (subscription := confirmed(djstripe_models.Subscription, event)) is not None:
        notices.trial_ending_apply(subscription, event_id=event.id)


@djstripe_receiver("customer.updated")
def on_customer_updated(sender: Any, event: Any, **kwargs: Any) -> None:
    # A new default card (set in the dashboard, or the portal without coming back to us)
    # pays a past-due customer's open invoice now, not at Stripe's next retry days later.
    previous = (event.data.get("previous_attributes") or {}).get("invoice_settings") or {}
    customer_id = (event.data.get("object") or {}).get("id")
    if "default_payment_method" in previous and customer_id:
        dunning.card_changed_apply(customer_id)


@djstripe_receiver("invoice.payment_action_required")
def on_payment_action_required(sender: Any, event: Any, **kwargs: Any) -> None:
    if (invoice := confirmed(djstripe_models.Invoice, event)) is not None:
        notices.payment_action_required_apply(invoice, event_id=event.id)
