"""The customer's billing details at Stripe: the e-mail receipts go to, tax ids, and the
card and plan as the customer left them in Stripe's portal.

Stripe validates them (a VAT number's format, an address); a refusal is the customer's to
fix, shown on their form, and leaves nothing half changed. What Stripe answers is written to
dj-stripe's mirror at once, so the page shows it without waiting for the webhook (which
later writes the same).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth.models import User
from djstripe import models as djstripe_models

from billing import gateway
from billing.selectors import mirrored
from billing.services import NoStripeCustomer, request_key_for, returned_subscription_apply
from billing.stripe_data import object_id, to_dict
from hrvstr.errors import DomainError
from subscriptions.services import account_get

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaxIdType:
    key: str  # Stripe's type
    label: str
    example: str


# The tax ids customers may add (Stripe knows ~100 types; these are the markets we sell to).
TAX_ID_TYPES = {
    t.key: t
    for t in (
        TaxIdType("eu_vat", "EU VAT number", "DE123456789"),
        TaxIdType("gb_vat", "UK VAT number", "GB123456789"),
        TaxIdType("us_ein", "US EIN", "12-3456789"),
        TaxIdType("ca_bn", "Canadian BN", "123456789"),
        TaxIdType("au_abn", "Australian ABN", "12345678912"),
        TaxIdType("ch_vat", "Swiss VAT number", "CHE-123.456.789 MWST"),
        TaxIdType("no_vat", "Norwegian VAT number", "123456789MVA"),
        TaxIdType("in_gst", "Indian GST number", "12ABCDE3456FGZH"),
    )
}


class TaxIdUnknown(DomainError):
    code = "tax_id_unknown"
    status = 404
    message = "No such tax id on your billing account"


def _customer_id(user: User) -> str:
    customer_id = account_get(user=user).stripe_customer_id
    if not customer_id:
        raise NoStripeCustomer()
    return customer_id


def billing_details_update(
    *, user: User, email: str, tax_id_type: str = "", tax_id_value: str = ""
) -> list[str]:
    """Send a new billing e-mail and/or a new tax id to Stripe; returns what changed.

    All or nothing: the tax id (the value Stripe refuses most) goes first, and is deleted
    again if Stripe then refuses the e-mail.
    """
    customer_id = _customer_id(user)
    changed = []
    created = None
    if tax_id_value:
        created = gateway.customer_tax_id_create(customer_id, kind=tax_id_type, value=tax_id_value)
        changed.append("tax id")
    if email and email != mirrored(djstripe_models.Customer, customer_id).get("email"):
        try:
            customer = gateway.customer_email_set(customer_id, email=email)
        except DomainError:
            if created is not None:
                gateway.customer_tax_id_delete(customer_id, created.id)
            raise
        djstripe_models.Customer.sync_from_stripe_data(customer)
        changed.append("billing e-mail")
    if created is not None:
        djstripe_models.TaxId.sync_from_stripe_data(created)
    return changed


def customer_mirror_refresh(*, customer_id: str) -> None:
    """Re-read the customer and the card it pays with into the mirror (dj-stripe's rows, which
    the billing page reads) ahead of their webhooks."""
    customer = gateway.customer_retrieve(customer_id)
    djstripe_models.Customer.sync_from_stripe_data(customer)
    invoice_settings = to_dict(customer).get("invoice_settings") or {}
    if card_id := object_id(invoice_settings.get("default_payment_method")):
        djstripe_models.PaymentMethod.sync_from_stripe_data(
            gateway.payment_method_retrieve(card_id)
        )


def portal_return_refresh(*, user: User) -> None:
    """Back from Stripe's portal: read what the customer may have changed there (card, plan,
    cancellation) from Stripe now, so the page they land on shows it at once instead of when
    the webhooks arrive. Best effort: without Stripe the page shows the mirror as it is."""
    account = account_get(user=user)
    if not account.stripe_customer_id:
        return
    try:
        customer_mirror_refresh(customer_id=account.stripe_customer_id)
        if account.stripe_subscription_id and account.subscription_live:
            subscription_id = account.stripe_subscription_id
            returned_subscription_apply(
                gateway.subscription_retrieve(subscription_id),
                request_key=request_key_for("portal-return", subscription_id),
            )
    except DomainError as exc:
        logger.warning("portal return of user %s: not refreshed (%s)", user.pk, exc.code)


def tax_id_remove(*, user: User, tax_id: str) -> None:
    """Delete one of the customer's own tax ids at Stripe (and from the mirror)."""
    customer_id = _customer_id(user)
    owned = djstripe_models.TaxId.objects.filter(id=tax_id, customer__id=customer_id)
    if not owned.exists():
        raise TaxIdUnknown(tax_id=tax_id)
    gateway.customer_tax_id_delete(customer_id, tax_id)
    owned.delete()
