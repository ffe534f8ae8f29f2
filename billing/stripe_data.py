"""Small readers over Stripe objects (dicts) in the pinned API version's shapes.

Since the 2025-03-31 ("basil") API, a subscription's billing period lives on its items and an
invoice names its subscription under ``parent.subscription_details``. dj-stripe 2.11's own
helpers still read the removed top-level fields (``Subscription.current_period_end`` is None,
``Invoice.subscription`` stays null), so we read ``stripe_data`` through these instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, overload

from subscriptions import catalogue
from subscriptions.catalogue import PriceEntry

StripeDict = Mapping[str, Any]


def to_dict(obj: Any) -> dict[str, Any]:
    """A plain dict from a StripeObject (no longer a dict in stripe-python 15) or a dict."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(obj)


@overload
def timestamp(value: int) -> datetime: ...
@overload
def timestamp(value: None) -> None: ...
def timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def object_id(value: Any) -> str | None:
    """An id from a field that is either an id or an expanded object."""
    if value is None or isinstance(value, str):
        return value
    return value.get("id")


def _first_item(subscription: StripeDict) -> StripeDict | None:
    items = (subscription.get("items") or {}).get("data") or []
    return items[0] if items else None


def subscription_period(subscription: StripeDict) -> tuple[datetime, datetime] | None:
    item = _first_item(subscription)
    if item is None or item.get("current_period_start") is None:
        return None
    return timestamp(item["current_period_start"]), timestamp(item["current_period_end"])


def subscription_price(subscription: StripeDict) -> StripeDict | None:
    item = _first_item(subscription)
    return item.get("price") if item else None


def subscription_item_id(subscription: StripeDict) -> str | None:
    item = _first_item(subscription)
    return item.get("id") if item else None


def subscription_price_id(subscription: StripeDict) -> str | None:
    return object_id(subscription_price(subscription))


def price_entry(price: StripeDict | None) -> PriceEntry | None:
    """The catalogue entry a Stripe price sells, by lookup key; None for a stranger."""
    if not price:
        return None
    return catalogue.PRICES_BY_LOOKUP_KEY.get(price.get("lookup_key") or "")


def _invoice_subscription_field(invoice: StripeDict) -> Any:
    parent = invoice.get("parent") or {}
    return (parent.get("subscription_details") or {}).get("subscription")


def invoice_subscription_id(invoice: StripeDict) -> str | None:
    return object_id(_invoice_subscription_field(invoice))


def invoice_subscription(invoice: StripeDict) -> dict[str, Any] | None:
    """The invoice's subscription when it was read expanded with the invoice, else None."""
    field = _invoice_subscription_field(invoice)
    return dict(field) if isinstance(field, Mapping) else None


def invoice_subscription_period(invoice: StripeDict) -> tuple[datetime, datetime] | None:
    """The service period an invoice pays for, from its subscription (non-proration) line."""
    lines = (invoice.get("lines") or {}).get("data") or []
    for line in lines:
        parent = line.get("parent") or {}
        details = parent.get("subscription_item_details") or {}
        if details.get("proration"):
            continue
        period = line.get("period") or {}
        if period.get("start") is not None and period.get("end") is not None:
            return timestamp(period["start"]), timestamp(period["end"])
    return None


def invoice_line_price_id(line: StripeDict) -> str | None:
    pricing = line.get("pricing") or {}
    return object_id((pricing.get("price_details") or {}).get("price"))


def invoice_bills_price_to(
    invoice: StripeDict, price_id: str | None, period: tuple[datetime, datetime] | None
) -> bool:
    """Whether one of the invoice's lines bills ``price_id`` up to the end of ``period``."""
    if not price_id or period is None:
        return False
    for line in (invoice.get("lines") or {}).get("data") or []:
        line_end = (line.get("period") or {}).get("end")
        if (
            invoice_line_price_id(line) == price_id
            and line_end is not None
            and (timestamp(line_end) >= period[1])
        ):
            return True
    return False


def checkout_price_lookup_keys(session: StripeDict) -> list[tuple[str, int]]:
    """(lookup_key, quantity) of each line item of an expanded Checkout Session."""
    lines = (session.get("line_items") or {}).get("data") or []
    found = []
    for line in lines:
        price = line.get("price") or {}
        found.append((price.get("lookup_key") or "", int(line.get("quantity") or 1)))
    return found
