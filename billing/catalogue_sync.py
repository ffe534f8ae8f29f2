"""Create (or find) the Stripe products and prices that sell the catalogue, by lookup key."""

from __future__ import annotations

from dataclasses import dataclass

from billing import gateway
from subscriptions import catalogue

CURRENCY = "usd"


@dataclass(frozen=True)
class SyncedPrice:
    lookup_key: str
    price_id: str
    created: bool


def catalogue_sync() -> list[SyncedPrice]:
    """Idempotent: existing prices (found by lookup key) are kept; missing ones are created.

    Works the same against Stripe test mode and the offline emulator. A price whose amount
    changed in the catalogue is not edited (Stripe prices are immutable): create a new lookup
    key instead, so old subscribers keep the price they signed up for.
    """
    entries = catalogue.price_entries()
    existing = gateway.prices_by_lookup_keys([entry.lookup_key for entry in entries])
    products = {
        product.metadata.get("hrvstr_product"): product.id
        for product in gateway.products_list()
        if product.metadata and product.metadata.get("hrvstr_product")
    }
    synced: list[SyncedPrice] = []
    for entry in entries:
        price = existing.get(entry.lookup_key)
        if price is not None:
            synced.append(SyncedPrice(entry.lookup_key, price.id, created=False))
            continue
        product_id = products.get(entry.product_key)
        if product_id is None:
            product_id = gateway.product_create(
                name=entry.product_name,
                metadata={"hrvstr_product": entry.product_key},
                idempotency_key=f"product:{entry.product_key}",
            ).id
            products[entry.product_key] = product_id
        price = gateway.price_create(
            product_id=product_id,
            amount_cents=entry.amount_cents,
            currency=CURRENCY,
            interval=entry.interval,
            lookup_key=entry.lookup_key,
            metadata=entry.metadata,
            idempotency_key=f"price:{entry.lookup_key}:{entry.amount_cents}",
        )
        synced.append(SyncedPrice(entry.lookup_key, price.id, created=True))
    return synced
