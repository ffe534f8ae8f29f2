"""Customer-portal configurations and the portal's plan switch.

Portal configurations (``/v1/billing_portal/configurations``) decide what the portal page
offers and how: which prices, which ``proration_behavior``, and which switches are scheduled
at the period end (``schedule_at_period_end.conditions``: ``decreasing_item_amount``,
``shortening_interval``). Without one of yours, a session uses the account's default
configuration, the one saved in the dashboard; the emulator's default prorates with
``create_prorations`` (billed at the next renewal) and schedules nothing.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import objects
from .billing import add_interval
from .core import Request, Routes
from .errors import invalid, missing
from .listing import LIST_SPEC, paginate
from .params import merge_metadata
from .schedules import (
    current_phase_refresh,
    emit_updated,
    phase_build,
    release,
    schedule_from_subscription,
)

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
ID = r"(?P<oid>[^/]+)"
DEFAULT_CONFIGURATION = "bpc_emulator_default"
PERIOD_END_CONDITIONS = ("decreasing_item_amount", "shortening_interval")
INTERVAL_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


# --- customer portal configurations -----------------------------------------------------
FEATURES_SPEC = {
    "customer_update": {"enabled": "bool", "allowed_updates": "strs"},
    "invoice_history": {"enabled": "bool"},
    "payment_method_update": {"enabled": "bool"},
    "subscription_cancel": {
        "enabled": "bool",
        "mode": "str",
        "proration_behavior": "str",
    },
    "subscription_update": {
        "enabled": "bool",
        "default_allowed_updates": "strs",
        "proration_behavior": "str",
        "products": [{"product": "str", "prices": "strs"}],
        "schedule_at_period_end": {"conditions": [{"type": "str"}]},
    },
}
CONFIG_SPEC = {
    "features": FEATURES_SPEC,
    "business_profile": {
        "headline": "str",
        "privacy_policy_url": "str",
        "terms_of_service_url": "str",
    },
    "default_return_url": "str",
    "metadata": "meta",
    "name": "str",
    "active": "bool",
}


def default_configuration(emu: Emulator) -> dict[str, Any]:
    """The account's default configuration (the dashboard's), created on first need."""
    existing = emu.store.get(DEFAULT_CONFIGURATION)
    if existing is not None:
        return existing
    config = objects.new("billing_portal.configuration", id=DEFAULT_CONFIGURATION)
    config.update(active=True, is_default=True, created=emu.now(), updated=emu.now(), metadata={})
    features = config["features"]
    for name in ("invoice_history", "payment_method_update", "subscription_cancel"):
        features[name]["enabled"] = True
    features["subscription_cancel"]["proration_behavior"] = "none"
    update = features["subscription_update"]
    update.update(
        enabled=True, default_allowed_updates=["price"], proration_behavior="create_prorations"
    )
    update["products"] = None  # every recurring price
    emu.store.add(config)
    return config


def _apply_features(emu: Emulator, config: dict[str, Any], spec: dict[str, Any]) -> None:
    features = config["features"]
    for name, values in spec.items():
        target = features[name]
        for key, value in values.items():
            if key == "products":
                products = []
                for i, product in enumerate(value):
                    emu.get(
                        "product", product.get("product", ""), f"features[{name}][products][{i}]"
                    )
                    for price_id in product.get("prices", []):
                        emu.get("price", price_id, f"features[{name}][products][{i}][prices]")
                    products.append(
                        {
                            "adjustable_quantity": {
                                "enabled": False,
                                "maximum": None,
                                "minimum": 1,
                            },
                            "prices": list(product.get("prices", [])),
                            "product": product["product"],
                        }
                    )
                target["products"] = products
            elif key == "schedule_at_period_end":
                conditions = value.get("conditions", [])
                for condition in conditions:
                    if condition.get("type") not in PERIOD_END_CONDITIONS:
                        raise invalid(
                            f"features[{name}][schedule_at_period_end][conditions]",
                            f"Invalid condition type: {condition.get('type')}",
                        )
                target["schedule_at_period_end"] = {
                    "conditions": [{"type": c["type"]} for c in conditions]
                }
            elif key == "proration_behavior" and value not in (
                "none",
                "create_prorations",
                "always_invoice",
            ):
                raise invalid(f"features[{name}][proration_behavior]", f"Invalid value: {value}")
            else:
                target[key] = value


@routes("POST", "/v1/billing_portal/configurations")
def create_configuration(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(CONFIG_SPEC)
    if "features" not in p:
        raise missing("features")
    config = objects.new("billing_portal.configuration", id=emu.new_id("bpc_"))
    at = emu.now()
    config.update(active=True, created=at, updated=at, metadata={})
    _apply_features(emu, config, p["features"])
    config["metadata"] = merge_metadata({}, p.get("metadata"))
    config["name"] = p.get("name")
    config["default_return_url"] = p.get("default_return_url")
    if "business_profile" in p:
        config["business_profile"].update(p["business_profile"])
    emu.store.add(config)
    emu.emit("billing_portal.configuration.created", config)
    return config


@routes("GET", f"/v1/billing_portal/configurations/{ID}")
def get_configuration(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    if oid == DEFAULT_CONFIGURATION:
        return default_configuration(emu)
    return emu.get("billing_portal.configuration", oid)


@routes("GET", "/v1/billing_portal/configurations")
def list_configurations(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "active": "bool", "is_default": "bool"})
    default_configuration(emu)
    items = emu.store.all("billing_portal.configuration")
    if "active" in p:
        items = [c for c in items if c["active"] == p["active"]]
    if "is_default" in p:
        items = [c for c in items if c["is_default"] == p["is_default"]]
    return paginate(items, p, "/v1/billing_portal/configurations")


@routes("POST", f"/v1/billing_portal/configurations/{ID}")
def update_configuration(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse(CONFIG_SPEC)
    config = emu.get("billing_portal.configuration", oid)
    before = copy.deepcopy(config)
    if "features" in p:
        _apply_features(emu, config, p["features"])
    if "metadata" in p:
        config["metadata"] = merge_metadata(config["metadata"], p["metadata"])
    for key in ("name", "default_return_url", "active"):
        if key in p:
            config[key] = p[key]
    config["updated"] = emu.now()
    emit_updated(emu, "billing_portal.configuration.updated", config, before)
    return config


def portal_prices(
    emu: Emulator, config: dict[str, Any], current: dict[str, Any]
) -> list[dict[str, Any]]:
    """The prices the portal offers to switch ``current`` to, under ``config``."""
    update = config["features"]["subscription_update"]
    if not update["enabled"] or "price" not in update["default_allowed_updates"]:
        return []
    allowed = None
    if update["products"] is not None:
        allowed = {price for product in update["products"] for price in product["prices"]}
    return [
        p
        for p in emu.store.all("price")
        if p["active"]
        and p["recurring"] is not None
        and p["id"] != current["id"]
        and p["currency"] == current["currency"]
        and (allowed is None or p["id"] in allowed)
    ]


def _per_day(price: dict[str, Any]) -> float:
    rec = price["recurring"]
    days: int = INTERVAL_DAYS[rec["interval"]] * rec["interval_count"]
    return float(price["unit_amount"]) / days


def portal_switch(emu: Emulator, config: dict[str, Any], sub: dict[str, Any], price_id: str) -> str:
    """Switch ``sub`` to ``price_id`` as the portal does under ``config``."""
    from .billing import update_subscription

    item = sub["items"]["data"][0]
    offered = {p["id"]: p for p in portal_prices(emu, config, item["price"])}
    if price_id not in offered:
        raise invalid("price", "That plan is not offered in this portal.")
    new = offered[price_id]
    update = config["features"]["subscription_update"]
    conditions = {c["type"] for c in update["schedule_at_period_end"]["conditions"]}
    old = item["price"]
    decreasing = _per_day(new) < _per_day(old)
    shortening = (
        INTERVAL_DAYS[new["recurring"]["interval"]] * new["recurring"]["interval_count"]
        < INTERVAL_DAYS[old["recurring"]["interval"]] * old["recurring"]["interval_count"]
    )
    if ("decreasing_item_amount" in conditions and decreasing) or (
        "shortening_interval" in conditions and shortening
    ):
        schedule = (
            emu.get("subscription_schedule", sub["schedule"])
            if sub["schedule"]
            else schedule_from_subscription(emu, sub)
        )
        current = schedule["phases"][0]
        at = emu.now_for(sub)
        current = next(
            (p for p in schedule["phases"] if p["start_date"] <= at < p["end_date"]), current
        )
        end = current["end_date"]
        rec = new["recurring"]
        before = copy.deepcopy(schedule)
        schedule["phases"] = [
            current,
            phase_build(
                emu, sub, new, 1, end, add_interval(end, rec["interval"], rec["interval_count"])
            ),
        ]
        schedule["end_behavior"] = "release"
        current_phase_refresh(emu, schedule, at)
        emit_updated(emu, "subscription_schedule.updated", schedule, before)
        return "Your plan will change at the end of the current period."
    if sub["schedule"]:
        release(emu, emu.get("subscription_schedule", sub["schedule"]))
    update_subscription(
        emu,
        sub,
        {
            "items": [{"id": item["id"], "price": price_id}],
            "proration_behavior": update["proration_behavior"],
        },
    )
    return "Plan switched."
