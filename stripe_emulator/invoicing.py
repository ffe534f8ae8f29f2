"""Invoices that are not renewals: one-off invoice items, manual invoices and threshold billing.

- ``POST /v1/invoiceitems`` adds a pending item (a one-time ``price`` times ``quantity``) for a
  customer, optionally for one of their subscriptions;
- ``POST /v1/invoices`` drafts a ``billing_reason=manual`` invoice (with the customer's pending
  items when ``pending_invoice_items_behavior=include``); ``auto_advance`` finalizes and charges
  it an hour later, else ``/finalize`` and ``/pay`` do;
- ``POST /_emulator/subscriptions/{id}/threshold_invoice`` is what Stripe does when a
  subscription's ``billing_thresholds`` are crossed: its pending items are invoiced at once with
  ``billing_reason=subscription_threshold`` and charged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import objects
from .billing import create_invoice, finalize_invoice, pay_invoice
from .core import Request, Routes, task
from .errors import invalid, missing
from .params import merge_metadata

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
HOUR = 3600


@routes("POST", "/v1/invoiceitems")
def create_invoice_item(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(
        {
            "customer": "str",
            "price": "str",
            "pricing": {"price": "str"},
            "quantity": "int",
            "description": "str",
            "subscription": "str",
            "metadata": "meta",
        }
    )
    if "customer" not in p:
        raise missing("customer")
    cus = emu.get("customer", p["customer"], "customer")
    price_id = p.get("price") or p.get("pricing", {}).get("price")
    if not price_id:
        raise invalid("pricing[price]", "The emulator needs a one-time price for invoice items.")
    price = emu.get("price", price_id, "pricing[price]")
    if price["type"] != "one_time":
        raise invalid("pricing[price]", "Invoice items take a one-time price.")
    sub = (
        emu.get("subscription", p["subscription"], "subscription") if "subscription" in p else None
    )
    if sub is not None and sub["customer"] != cus["id"]:
        raise invalid("subscription", "The subscription belongs to another customer.")
    item = one_time_item(
        emu, cus, price, p.get("quantity", 1), p.get("description"), sub["id"] if sub else None
    )
    item["metadata"] = merge_metadata({}, p.get("metadata"))
    emu.emit("invoiceitem.created", item)
    return item


def one_time_item(
    emu: Emulator,
    cus: dict[str, Any],
    price: dict[str, Any],
    quantity: int,
    description: str | None = None,
    sub_id: str | None = None,
) -> dict[str, Any]:
    """A pending invoice item for ``quantity`` of a one-time price (described by its product)."""
    at = emu.now_for(cus)
    item = objects.invoice_item(
        emu.new_id("ii_"),
        at,
        customer=cus["id"],
        amount=price["unit_amount"] * quantity,
        currency=price["currency"],
        description=description or emu.get("product", price["product"])["name"],
        price_obj=price,
        start=at,
        end=at,
        sub_id=sub_id,
        si_id=None,
        proration=False,
        test_clock=cus["test_clock"],
    )
    item.update(quantity=quantity, quantity_decimal=str(quantity))
    emu.store.add(item)
    return item


def _pending(emu: Emulator, customer_id: str, sub_id: str | None) -> list[dict[str, Any]]:
    def sub_of(ii: dict[str, Any]) -> str | None:
        return ((ii["parent"] or {}).get("subscription_details") or {}).get("subscription")

    return [
        ii
        for ii in reversed(emu.store.all("invoiceitem"))
        if ii["invoice"] is None and ii["customer"] == customer_id and sub_of(ii) == sub_id
    ]


def stand_in(cus: dict[str, Any], currency: str) -> dict[str, Any]:
    """What ``create_invoice`` reads of a subscription, for an invoice without one."""
    return {"id": None, "customer": cus["id"], "currency": currency, "metadata": {}, "items": {}}


@routes("POST", "/v1/invoices")
def create_manual_invoice(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(
        {
            "customer": "str",
            "subscription": "str",
            "auto_advance": "bool",
            "collection_method": "str",
            "description": "str",
            "pending_invoice_items_behavior": "str",
            "currency": "str",
            "metadata": "meta",
        }
    )
    if "customer" not in p:
        raise missing("customer")
    cus = emu.get("customer", p["customer"], "customer")
    sub = (
        emu.get("subscription", p["subscription"], "subscription") if "subscription" in p else None
    )
    behavior = p.get("pending_invoice_items_behavior", "exclude")
    if behavior not in ("include", "exclude"):
        raise invalid("pending_invoice_items_behavior", f"Invalid value: {behavior}")
    if p.get("collection_method", "charge_automatically") != "charge_automatically":
        raise invalid("collection_method", "The emulator charges invoices automatically only.")
    pending = _pending(emu, cus["id"], sub["id"] if sub else None) if behavior == "include" else []
    currency = (sub or {}).get("currency") or p.get("currency") or "usd"
    at = emu.now_for(cus)
    inv = create_invoice(
        emu, sub or stand_in(cus, currency), "manual", period_start=at, period_end=at,
        with_sub_lines=False, pending=pending,
    )  # fmt: skip
    inv["description"] = p.get("description")
    inv["metadata"] = merge_metadata({}, p.get("metadata"))
    inv["auto_advance"] = p.get("auto_advance", False)
    if inv["auto_advance"]:
        inv["automatically_finalizes_at"] = at + HOUR
        emu.schedule("manual_auto_advance", inv["id"], at + HOUR, owner=cus)
    return inv


@task("manual_auto_advance")
def manual_auto_advance(emu: Emulator, invoice_id: str) -> None:
    inv = emu.store.get(invoice_id, "invoice")
    if inv is None or inv["status"] != "draft" or not inv["auto_advance"]:
        return
    finalize_invoice(emu, inv)
    pay_invoice(emu, inv, "manual")


@routes("POST", r"/_emulator/subscriptions/(?P<oid>[^/]+)/threshold_invoice")
def threshold_invoice(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    """Billing thresholds crossed: invoice the subscription's pending items now and charge."""
    with emu.transaction():
        sub = emu.get("subscription", oid)
        pending = _pending(emu, sub["customer"], sub["id"])
        if not pending:
            raise invalid("subscription", "The subscription has no pending invoice items.")
        at = emu.now_for(sub)
        inv = create_invoice(
            emu, sub, "subscription_threshold", period_start=at, period_end=at,
            with_sub_lines=False, pending=pending,
        )  # fmt: skip
        sub["latest_invoice"] = inv["id"]
        finalize_invoice(emu, inv)
        pay_invoice(emu, inv, "update")
        return dict(inv)
