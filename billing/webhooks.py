"""dj-stripe receivers: each re-reads the object dj-stripe just synced and calls one function.

They run inside dj-stripe's transaction for the event (the Event row is inserted first, so a
duplicate delivery never reaches them); an exception rolls everything back and answers 500,
and Stripe retries.
"""

from __future__ import annotations

from typing import Any

from djstripe import models as djstripe_models
from djstripe.event_handlers import djstripe_receiver

from billing import notices, sync


def current(model: type[djstripe_models.StripeModel], event: Any) -> dict[str, Any]:
    """The object as dj-stripe has just fetched it from Stripe, else the event's snapshot."""
    snapshot = event.data["object"]
    stored = model.objects.filter(id=snapshot["id"]).values_list("stripe_data", flat=True).first()
    return stored or snapshot


@djstripe_receiver(["checkout.session.completed", "checkout.session.async_payment_succeeded"])
def on_checkout_paid(sender: Any, event: Any, **kwargs: Any) -> None:
    sync.checkout_completed_apply(current(djstripe_models.Session, event), event_id=event.id)


@djstripe_receiver("checkout.session.async_payment_failed")
def on_checkout_payment_failed(sender: Any, event: Any, **kwargs: Any) -> None:
    sync.checkout_payment_failed_apply(current(djstripe_models.Session, event), event_id=event.id)


@djstripe_receiver(
    [
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
    ]
)
def on_subscription_changed(sender: Any, event: Any, **kwargs: Any) -> None:
    sync.subscription_apply(
        current(djstripe_models.Subscription, event),
        observed_at=event.created,
        idempotency_key=f"sub:{event.data['object']['id']}:{event.id}",
        source=event.id,
    )


@djstripe_receiver("invoice.paid")
def on_invoice_paid(sender: Any, event: Any, **kwargs: Any) -> None:
    sync.invoice_paid_apply(
        current(djstripe_models.Invoice, event), event_id=event.id, observed_at=event.created
    )


@djstripe_receiver("charge.refunded")
def on_charge_refunded(sender: Any, event: Any, **kwargs: Any) -> None:
    sync.charge_refunded_apply(current(djstripe_models.Charge, event), event_id=event.id)


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
    sync.dispute_apply(current(djstripe_models.Dispute, event), event_id=event.id)


@djstripe_receiver(["refund.created", "refund.updated", "refund.failed", "charge.refund.updated"])
def on_refund_changed(sender: Any, event: Any, **kwargs: Any) -> None:
    # dj-stripe does not sync these (a charge.refund.* event carries a refund): the payment's
    # refunds are read from Stripe again in billing.clawbacks.
    sync.refund_changed_apply(event.data["object"], event_id=event.id)


@djstripe_receiver("invoice.payment_action_required")
def on_payment_action_required(sender: Any, event: Any, **kwargs: Any) -> None:
    notices.payment_action_required_apply(
        current(djstripe_models.Invoice, event), event_id=event.id
    )
