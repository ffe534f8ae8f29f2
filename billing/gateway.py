"""Every call we make to Stripe, as typed functions over the unmodified stripe-python SDK.

Nothing else in the project imports ``stripe`` to talk to the API. The SDK reaches real
Stripe, or the offline emulator when ``STRIPE_API_HOST`` points at it (only the base address
changes). Stripe's errors become domain errors here and nowhere else.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import stripe
from django.conf import settings

from hrvstr.errors import DomainError

logger = logging.getLogger(__name__)
T = TypeVar("T")


class StripeNotConfigured(DomainError):
    code = "stripe_not_configured"
    status = 503
    message = "Payments are not configured on this server (no Stripe key)"


class StripeUnavailable(DomainError):
    code = "stripe_unavailable"
    status = 503
    message = "Stripe could not be reached, please try again in a minute"


class StripeRequestFailed(DomainError):
    code = "stripe_error"
    status = 502
    message = "Stripe refused the request"


class CustomerMissing(StripeRequestFailed):
    """Stripe has no such customer (deleted in the dashboard, or never in this mode)."""

    code = "stripe_customer_missing"
    message = "Your billing account no longer exists at Stripe"


class StripeInputInvalid(StripeRequestFailed):
    """Stripe refused a value the customer typed (a tax id, an e-mail): their mistake, said
    with Stripe's message; ``param`` names the field."""

    code = "stripe_input_invalid"
    status = 400
    message = "Stripe did not accept this value"


# Stripe's error codes for a value that fails its validation, not for a request we got wrong.
INPUT_ERROR_CODES = frozenset({"tax_id_invalid", "email_invalid", "invalid_tax_location"})


class CardDeclined(DomainError):
    code = "card_declined"
    status = 402
    message = "The card was declined"


def live_mode() -> bool:
    return bool(settings.STRIPE_LIVE_MODE)


def secret_key() -> str:
    return settings.STRIPE_LIVE_SECRET_KEY if live_mode() else settings.STRIPE_TEST_SECRET_KEY


def is_configured() -> bool:
    return bool(secret_key())


def sdk_configure() -> None:
    """Bound every SDK request in time: ours and dj-stripe's (they share the SDK's globals).

    stripe-python waits 80 s for an answer by default (its requests client; its urllib
    fallback, which production would get without ``requests``, has no timeout at all), longer
    than a web worker lives: a hung Stripe ended checkout in the server's bare 500 and a
    killed worker. ``STRIPE_TIMEOUT_SECONDS`` bounds each attempt and
    ``STRIPE_MAX_NETWORK_RETRIES`` the retries of a failed connection, a timeout or a 409/5xx;
    every POST carries an idempotency key (ours, or the SDK's own for the retries of one call),
    so a retry never charges twice. Worst case: (retries + 1) x timeout + ~1 s of backoff,
    which must stay under the web server's request timeout (gunicorn.conf.py: 30 s).

    A client installed by someone else (the in-process emulator in tests) is left alone.
    """
    stripe.max_network_retries = settings.STRIPE_MAX_NETWORK_RETRIES
    timeout = float(settings.STRIPE_TIMEOUT_SECONDS)
    current = stripe.default_http_client
    if current is not None:
        if getattr(current, "hrvstr_timeout", None) == timeout:
            return
        ours_or_stock = hasattr(current, "hrvstr_timeout") or type(current).__module__.startswith(
            "stripe."
        )
        if not ours_or_stock:
            return
    client = stripe.RequestsClient(timeout=timeout)
    client.hrvstr_timeout = timeout  # type: ignore[attr-defined]  # our mark on the SDK's client
    stripe.default_http_client = client


def _configure() -> str:
    key = secret_key()
    if not key:
        raise StripeNotConfigured()
    host = getattr(settings, "STRIPE_API_HOST", "")
    if host and stripe.api_base != host:
        stripe.api_base = host
    sdk_configure()
    return key


def _call(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run one SDK call with our key, turning Stripe's errors into domain errors."""
    kwargs["api_key"] = _configure()
    try:
        return function(*args, **kwargs)
    except stripe.CardError as exc:
        raise CardDeclined(exc.user_message or CardDeclined.message) from exc
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        logger.warning("Stripe unreachable: %s", exc)
        raise StripeUnavailable() from exc
    except stripe.StripeError as exc:
        logger.error("Stripe error %s: %s", exc.code, exc.user_message or exc)
        status = exc.http_status or 0
        if status >= 500:
            raise StripeUnavailable() from exc
        if exc.code == "resource_missing" and (
            getattr(exc, "param", None) == "customer" or "No such customer" in str(exc)
        ):
            raise CustomerMissing(stripe_code=exc.code) from exc
        if exc.code in INPUT_ERROR_CODES:
            raise StripeInputInvalid(
                exc.user_message or StripeInputInvalid.message,
                stripe_code=exc.code,
                param=getattr(exc, "param", None),
            ) from exc
        raise StripeRequestFailed(
            exc.user_message or StripeRequestFailed.message, stripe_code=exc.code
        ) from exc


class StripeList(dict[str, Any]):
    """A list object read by ``object_read``, used as dj-stripe uses the SDK's ``ListObject``
    (an invoice's lines, a subscription's items): iterated and sized as its embedded page, and
    paged through to the end. Its keys and values are the JSON object's (``items()``, JSON
    encoding, ``dict(...)``)."""

    api_key = ""

    def __iter__(self) -> Iterator[Any]:  # ListObject's iteration: the page's items
        return iter(self.get("data") or [])

    def __len__(self) -> int:
        return len(self.get("data") or [])

    def auto_paging_iter(self) -> Iterator[Any]:
        if not self.get("has_more"):
            return iter(self.get("data") or [])
        # Stripe embeds a first page only (ten invoice lines): the SDK fetches the rest.
        return stripe.ListObject.construct_from(dict(self), self.api_key).auto_paging_iter()


def object_read(resource: Any, object_id: str, *, expand: list[str]) -> dict[str, Any]:
    """Any object by id, with ``expand``, as plain JSON values (list objects as ``StripeList``):
    billing/event_objects.py's read of an event's object, for dj-stripe's sync.

    dj-stripe turns the SDK's objects back into dicts before it reads them. Building them for
    an expanded answer (about 560 per event) was a fifth of a webhook worker's CPU (py-spy on
    bench/task_queue.py's drain). The request is still the SDK's own
    (``StripeClient.raw_request``), with the HTTP client, retries and API version of its
    module-level calls, and its errors mapped as theirs (``_call``)."""
    url = f"{resource.class_url()}/{quote(object_id, safe='')}"
    return _call(_plain_get, url, expand=expand)


def _plain_get(url: str, *, api_key: str, expand: list[str]) -> dict[str, Any]:
    client = _raw_client(
        api_key,
        stripe.api_base,
        stripe.default_http_client,
        stripe.max_network_retries,
        stripe.api_version,
    )
    response = client.raw_request("get", url, expand=expand)

    def listed(value: dict[str, Any]) -> dict[str, Any]:
        if value.get("object") != "list":
            return value
        paged = StripeList(value)
        paged.api_key = api_key
        return paged

    return json.loads(response.body, object_hook=listed)


@functools.lru_cache(maxsize=8)
def _raw_client(
    api_key: str,
    api_base: str,
    http_client: Any,
    max_network_retries: int,
    api_version: str | None,
) -> stripe.StripeClient:
    """A client configured as the SDK's globals are now (the module-level calls' settings)."""
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        http_client=http_client,
        max_network_retries=max_network_retries,
        stripe_version=api_version,
    )


# --- customers --------------------------------------------------------------------------------


def customer_create(
    *, email: str, name: str, metadata: dict[str, str], idempotency_key: str
) -> stripe.Customer:
    return _call(
        stripe.Customer.create,
        email=email,
        name=name or None,
        metadata=metadata,
        idempotency_key=idempotency_key,
    )


def customer_retrieve(customer_id: str) -> stripe.Customer:
    return _call(stripe.Customer.retrieve, customer_id)


def customer_email_set(customer_id: str, *, email: str) -> stripe.Customer:
    """The address Stripe sends receipts and invoices to."""
    return _call(
        stripe.Customer.modify,
        customer_id,
        email=email,
        idempotency_key=_request_key(f"customer-email:{customer_id}"),
    )


def customer_tax_id_create(customer_id: str, *, kind: str, value: str) -> stripe.TaxId:
    return _call(
        stripe.Customer.create_tax_id,
        customer_id,
        type=kind,
        value=value,
        idempotency_key=_request_key(f"tax-id:{customer_id}"),
    )


def customer_tax_id_delete(customer_id: str, tax_id: str) -> stripe.TaxId:
    return _call(stripe.Customer.delete_tax_id, customer_id, tax_id)


# --- catalogue --------------------------------------------------------------------------------


def prices_by_lookup_keys(lookup_keys: list[str]) -> dict[str, stripe.Price]:
    result = _call(
        stripe.Price.list, lookup_keys=lookup_keys, active=True, limit=100, expand=["data.product"]
    )
    return {price.lookup_key: price for price in result.data if price.lookup_key}


def price_retrieve(price_id: str) -> stripe.Price:
    return _call(stripe.Price.retrieve, price_id)


def products_list() -> Iterator[stripe.Product]:
    return _call(stripe.Product.list, limit=100).auto_paging_iter()


def product_create(*, name: str, metadata: dict[str, str], idempotency_key: str) -> stripe.Product:
    return _call(
        stripe.Product.create, name=name, metadata=metadata, idempotency_key=idempotency_key
    )


def price_create(
    *,
    product_id: str,
    amount_cents: int,
    currency: str,
    interval: str | None,
    lookup_key: str,
    metadata: dict[str, str],
    idempotency_key: str,
) -> stripe.Price:
    params: dict[str, Any] = dict(
        product=product_id,
        unit_amount=amount_cents,
        currency=currency,
        lookup_key=lookup_key,
        metadata=metadata,
        idempotency_key=idempotency_key,
    )
    if interval:
        params["recurring"] = {"interval": interval}
    return _call(stripe.Price.create, **params)


# --- checkout and portal ------------------------------------------------------------------------


def _request_key(kind: str) -> str:
    # One key per call we make: the SDK's retries of it replay Stripe's first answer, while
    # the user's next click is a new request (a new session is what they asked for).
    return f"{kind}:{uuid.uuid4().hex}"


def checkout_session_create(
    *, idempotency_key: str | None = None, **params: Any
) -> stripe.checkout.Session:
    return _call(
        stripe.checkout.Session.create,
        idempotency_key=idempotency_key or _request_key("checkout"),
        **params,
    )


def checkout_session_retrieve(session_id: str) -> stripe.checkout.Session:
    return _call(stripe.checkout.Session.retrieve, session_id, expand=["line_items"])


def portal_session_create(
    *,
    customer_id: str,
    return_url: str,
    configuration: str | None = None,
    idempotency_key: str | None = None,
) -> stripe.billing_portal.Session:
    params: dict[str, Any] = {"customer": customer_id, "return_url": return_url}
    if configuration:
        params["configuration"] = configuration
    return _call(
        stripe.billing_portal.Session.create,
        idempotency_key=idempotency_key or _request_key(f"portal:{customer_id}"),
        **params,
    )


# --- subscriptions and invoices -----------------------------------------------------------------


def subscription_retrieve(
    subscription_id: str, *, expand: list[str] | None = None
) -> stripe.Subscription:
    return _call(stripe.Subscription.retrieve, subscription_id, expand=expand or [])


def subscriptions_list(customer_id: str) -> list[stripe.Subscription]:
    result = _call(stripe.Subscription.list, customer=customer_id, status="all", limit=100)
    return list(result.auto_paging_iter())


def subscription_modify(
    subscription_id: str, *, idempotency_key: str, **params: Any
) -> stripe.Subscription:
    return _call(
        stripe.Subscription.modify, subscription_id, idempotency_key=idempotency_key, **params
    )


def subscription_cancel_now(
    subscription_id: str, *, idempotency_key: str, **params: Any
) -> stripe.Subscription:
    return _call(
        stripe.Subscription.cancel, subscription_id, idempotency_key=idempotency_key, **params
    )


# --- refunds and disputes -----------------------------------------------------------------------


def refunds_for_payment_intent(payment_intent_id: str) -> list[stripe.Refund]:
    result = _call(stripe.Refund.list, payment_intent=payment_intent_id, limit=100)
    return list(result.auto_paging_iter())


def disputes_for_payment_intent(payment_intent_id: str) -> list[stripe.Dispute]:
    result = _call(stripe.Dispute.list, payment_intent=payment_intent_id, limit=100)
    return list(result.auto_paging_iter())


# --- money safety (issue 11): confirmations, duplicates, schedules, the portal's setup -------


def invoice_retrieve(invoice_id: str) -> stripe.Invoice:
    return _call(stripe.Invoice.retrieve, invoice_id)


def invoices_for_subscription(subscription_id: str) -> list[stripe.Invoice]:
    result = _call(stripe.Invoice.list, subscription=subscription_id, limit=100)
    return list(result.auto_paging_iter())


def invoice_items_pending(customer_id: str) -> list[stripe.InvoiceItem]:
    result = _call(stripe.InvoiceItem.list, customer=customer_id, pending=True, limit=100)
    return list(result.auto_paging_iter())


def invoice_payments(invoice_id: str) -> list[stripe.InvoicePayment]:
    return list(_call(stripe.InvoicePayment.list, invoice=invoice_id, limit=100).data)


def refund_create(
    *, payment_intent: str, metadata: dict[str, str], idempotency_key: str
) -> stripe.Refund:
    return _call(
        stripe.Refund.create,
        payment_intent=payment_intent,
        metadata=metadata,
        idempotency_key=idempotency_key,
    )


def payment_method_retrieve(payment_method_id: str) -> stripe.PaymentMethod:
    return _call(stripe.PaymentMethod.retrieve, payment_method_id)


def payment_intent_retrieve(payment_intent_id: str) -> stripe.PaymentIntent:
    return _call(stripe.PaymentIntent.retrieve, payment_intent_id)


def payment_intent_create(*, idempotency_key: str, **params: Any) -> stripe.PaymentIntent:
    return _call(stripe.PaymentIntent.create, idempotency_key=idempotency_key, **params)


def checkout_sessions_open(customer_id: str) -> list[stripe.checkout.Session]:
    result = _call(stripe.checkout.Session.list, customer=customer_id, status="open", limit=100)
    return list(result.auto_paging_iter())


def checkout_session_expire(session_id: str) -> stripe.checkout.Session:
    return _call(stripe.checkout.Session.expire, session_id)


def subscription_schedule_retrieve(schedule_id: str) -> stripe.SubscriptionSchedule:
    return _call(stripe.SubscriptionSchedule.retrieve, schedule_id)


def subscription_schedule_create(
    *, subscription_id: str, idempotency_key: str
) -> stripe.SubscriptionSchedule:
    return _call(
        stripe.SubscriptionSchedule.create,
        from_subscription=subscription_id,
        idempotency_key=idempotency_key,
    )


def subscription_schedule_modify(
    schedule_id: str, *, idempotency_key: str, **params: Any
) -> stripe.SubscriptionSchedule:
    return _call(
        stripe.SubscriptionSchedule.modify, schedule_id, idempotency_key=idempotency_key, **params
    )


def subscription_schedule_release(
    schedule_id: str, *, idempotency_key: str
) -> stripe.SubscriptionSchedule:
    return _call(stripe.SubscriptionSchedule.release, schedule_id, idempotency_key=idempotency_key)


def portal_configurations_list() -> Iterator[stripe.billing_portal.Configuration]:
    return _call(stripe.billing_portal.Configuration.list, limit=100).auto_paging_iter()


def portal_configuration_create(
    *, idempotency_key: str, **params: Any
) -> stripe.billing_portal.Configuration:
    return _call(
        stripe.billing_portal.Configuration.create, idempotency_key=idempotency_key, **params
    )


def portal_configuration_modify(
    configuration_id: str, *, idempotency_key: str, **params: Any
) -> stripe.billing_portal.Configuration:
    return _call(
        stripe.billing_portal.Configuration.modify,
        configuration_id,
        idempotency_key=idempotency_key,
        **params,
    )


def checkout_session_retrieve_on_return(session_id: str) -> stripe.checkout.Session:
    """The session the customer just paid, with what applying it needs (one call)."""
    return _call(stripe.checkout.Session.retrieve, session_id, expand=["line_items", "invoice"])


def invoice_pay(invoice_id: str, *, payment_method: str, idempotency_key: str) -> stripe.Invoice:
    return _call(
        stripe.Invoice.pay,
        invoice_id,
        payment_method=payment_method,
        idempotency_key=idempotency_key,
    )


# --- what a change will cost (issue 16): Stripe's own invoice preview ----------------------------


def invoice_preview(
    *, customer: str, subscription: str, subscription_details: dict[str, Any] | None = None
) -> stripe.Invoice:
    """The invoice Stripe would make (``Invoice.create_preview``): with ``subscription_details``
    the one the proposed change bills, without them the subscription's upcoming invoice.

    A preview creates nothing and has no side effect, so it carries no idempotency key.
    """
    params: dict[str, Any] = {"customer": customer, "subscription": subscription}
    if subscription_details:
        params["subscription_details"] = subscription_details
    return _call(stripe.Invoice.create_preview, **params)
