"""Create (or find) the Stripe products and prices that sell the catalogue, by lookup key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from djstripe import models as djstripe_models

from billing import gateway
from billing.owner_account import owner_account_memo
from billing.stripe_data import to_dict
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
    products: dict[str, str] = {}
    for product in gateway.products_list():
        product_key = (to_dict(product).get("metadata") or {}).get("hrvstr_product")
        if product_key:
            products[product_key] = product.id
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
    # dj-stripe's mirror of the prices and their products: an event whose invoice or
    # subscription names a price with no row would fetch the price, its product and the
    # product's features first (three Stripe calls).
    # The list read above has every price (and its product) unless some were created just now.
    if any(price.created for price in synced):
        existing = gateway.prices_by_lookup_keys([entry.lookup_key for entry in entries])
    with owner_account_memo():
        for stripe_price in existing.values():
            djstripe_models.Price.sync_from_stripe_data(stripe_price)
    return synced


# --- the customer portal's configuration (issue 11) ------------------------------------------
# Stripe's default portal configuration switches plans without invoicing the difference and
# downgrades at once; ours invoices upgrades now (``always_invoice``) and schedules downgrades
# and shorter intervals for the period end (Stripe makes a subscription schedule for them).
PORTAL_MARK = "hrvstr_portal"
PORTAL_VERSION = "1"
PORTAL_PERIOD_END_CONDITIONS = ["decreasing_item_amount", "shortening_interval"]


@dataclass(frozen=True)
class PortalSync:
    configuration_id: str
    action: str  # created, updated or exists


def portal_configuration_params(products: dict[str, list[str]]) -> dict[str, Any]:
    """Our portal: plan switches among the catalogue's plans, cards, invoices, cancellation."""
    return {
        "features": {
            "invoice_history": {"enabled": True},
            "payment_method_update": {"enabled": True},
            "subscription_cancel": {
                "enabled": True,
                "mode": "at_period_end",
                "proration_behavior": "none",
            },
            "subscription_update": {
                "enabled": True,
                "default_allowed_updates": ["price"],
                "proration_behavior": "always_invoice",
                "products": [
                    {"product": product, "prices": sorted(prices)}
                    for product, prices in sorted(products.items())
                ],
                "schedule_at_period_end": {
                    "conditions": [{"type": c} for c in PORTAL_PERIOD_END_CONDITIONS]
                },
            },
        },
        "metadata": {PORTAL_MARK: PORTAL_VERSION},
    }


def _plan_products() -> dict[str, list[str]]:
    """Product id -> the recurring catalogue price ids it sells, as Stripe has them."""
    entries = [entry for entry in catalogue.price_entries() if entry.interval]
    prices = gateway.prices_by_lookup_keys([entry.lookup_key for entry in entries])
    products: dict[str, list[str]] = {}
    for entry in entries:
        price = prices.get(entry.lookup_key)
        if price is None:
            continue
        product = price.product if isinstance(price.product, str) else price.product.id
        products.setdefault(product, []).append(price.id)
    return products


def portal_configuration_find() -> dict[str, Any] | None:
    """Our active portal configuration at Stripe (by its metadata mark), if any."""
    for config in gateway.portal_configurations_list():
        data = to_dict(config)
        if data.get("active") and (data.get("metadata") or {}).get(PORTAL_MARK):
            return data
    return None


def portal_configuration_problems(config: dict[str, Any] | None) -> list[str]:
    """How a portal configuration differs from ours (empty when it is ours as we made it)."""
    if config is None:
        return ["no billing-portal configuration of ours (run manage.py stripe_sync_catalogue)"]
    problems = []
    update = (config.get("features") or {}).get("subscription_update") or {}
    if not update.get("enabled"):
        problems.append("plan switching is disabled")
    if update.get("proration_behavior") != "always_invoice":
        problems.append(f"proration_behavior is {update.get('proration_behavior')!r}")
    conditions = {
        c.get("type") for c in (update.get("schedule_at_period_end") or {}).get("conditions") or []
    }
    if conditions != set(PORTAL_PERIOD_END_CONDITIONS):
        problems.append(f"downgrades are not scheduled at the period end ({sorted(conditions)})")
    offered = {
        (p.get("product"), price)
        for p in update.get("products") or []
        for price in p.get("prices") or []
    }
    expected = {
        (product, price) for product, prices in _plan_products().items() for price in prices
    }
    if offered != expected:
        problems.append("the plans offered differ from the catalogue's")
    return problems


def portal_configuration_sync() -> PortalSync:
    """Create our portal configuration, or bring the existing one back to ours."""
    params = portal_configuration_params(_plan_products())
    config = portal_configuration_find()
    if config is None:
        created = gateway.portal_configuration_create(
            idempotency_key=f"portal-config:{PORTAL_VERSION}:{len(str(params))}", **params
        )
        return PortalSync(created.id, "created")
    if not portal_configuration_problems(config):
        return PortalSync(config["id"], "exists")
    gateway.portal_configuration_modify(
        config["id"], idempotency_key=f"portal-config:{config['id']}:{uuid.uuid4().hex}", **params
    )
    return PortalSync(config["id"], "updated")
