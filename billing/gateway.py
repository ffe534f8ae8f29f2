"""Every call we make to Stripe, as typed functions over the unmodified stripe-python SDK.

Nothing else in the project imports ``stripe`` to talk to the API. The SDK reaches real
Stripe, or the offline emulator when ``STRIPE_API_HOST`` points at it (only the base address
changes). Stripe's errors become domain errors here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

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


def _configure() -> str:
    key = secret_key()
    if not key:
        raise StripeNotConfigured()
    host = getattr(settings, "STRIPE_API_HOST", "")
    if host and stripe.api_base != host:
        stripe.api_base = host
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
        raise StripeRequestFailed(
            exc.user_message or StripeRequestFailed.message, stripe_code=exc.code
        ) from exc


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


def checkout_session_create(**params: Any) -> stripe.checkout.Session:
    return _call(stripe.checkout.Session.create, **params)


def checkout_session_retrieve(session_id: str) -> stripe.checkout.Session:
    return _call(stripe.checkout.Session.retrieve, session_id, expand=["line_items"])


def portal_session_create(*, customer_id: str, return_url: str) -> stripe.billing_portal.Session:
    return _call(stripe.billing_portal.Session.create, customer=customer_id, return_url=return_url)


def charges_for_payment_intent(payment_intent_id: str) -> list[stripe.Charge]:
    return list(_call(stripe.Charge.list, payment_intent=payment_intent_id, limit=100).data)


# --- subscriptions and invoices -----------------------------------------------------------------


def subscription_retrieve(subscription_id: str) -> stripe.Subscription:
    return _call(stripe.Subscription.retrieve, subscription_id)


def subscriptions_list(customer_id: str) -> list[stripe.Subscription]:
    result = _call(stripe.Subscription.list, customer=customer_id, status="all", limit=100)
    return list(result.auto_paging_iter())


def subscriptions_iter_all() -> Iterator[stripe.Subscription]:
    return _call(stripe.Subscription.list, status="all", limit=100).auto_paging_iter()


def subscription_modify(
    subscription_id: str, *, idempotency_key: str, **params: Any
) -> stripe.Subscription:
    return _call(
        stripe.Subscription.modify, subscription_id, idempotency_key=idempotency_key, **params
    )


def subscription_cancel_now(subscription_id: str, *, idempotency_key: str) -> stripe.Subscription:
    return _call(stripe.Subscription.cancel, subscription_id, idempotency_key=idempotency_key)
