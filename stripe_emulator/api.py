"""Plain resources: account, customers, products, prices, payment methods, payments, refunds,
events, webhook endpoints, billing portal sessions, invoice items and invoice payments."""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from . import objects
from .core import Request, Routes, task
from .errors import StripeError, invalid, missing, not_found
from .listing import LIST_SPEC, paginate
from .params import merge_metadata

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
ID = r"(?P<oid>[^/]+)"

# Stripe's test PaymentMethod tokens -> the card number they stand for
TEST_PM_TOKENS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
}


# Stripe's refund test cards: the refund's final status comes some time later
# (4000 0000 0000 7726: pending, then succeeded; 4000 0000 0000 5126: succeeded, then failed).
REFUND_CARDS = {"4000000000007726": "pending", "4000000000005126": "fails"}
REFUND_SETTLE_SECONDS = 600


def filtered(items: list[dict[str, Any]], **conditions: Any) -> list[dict[str, Any]]:
    return [o for o in items if all(v is None or o.get(k) == v for k, v in conditions.items())]


def created_filter(
    items: list[dict[str, Any]], created: dict[str, int] | None
) -> list[dict[str, Any]]:
    if not created:
        return items
    ops = {
        "eq": lambda a, b: a == b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    for op, value in created.items():
        if op not in ops:
            raise invalid(f"created[{op}]", f"Received unknown parameter: created[{op}]")
        items = [o for o in items if ops[op](o["created"], value)]
    return items


# --- account ----------------------------------------------------------------------------
@routes("GET", "/v1/account")
def get_account(emu: Emulator, req: Request) -> dict[str, Any]:
    req.parse({})
    return objects.account(emu.display_name)


@routes("GET", f"/v1/accounts/{ID}")
def get_account_by_id(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    if oid != "acct_emulator":
        raise not_found("account", oid)
    return objects.account(emu.display_name)


# --- customers --------------------------------------------------------------------------
CUSTOMER_SPEC = {
    "email": "str",
    "name": "str",
    "description": "str",
    "phone": "str",
    "metadata": "meta",
    "payment_method": "str",
    "invoice_settings": {"default_payment_method": "str"},
    "preferred_locales": "strs",
    "address": "any",
    "test_clock": "str",
}


EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def check_email(email: str | None) -> None:
    """Stripe refuses a malformed address (an empty one unsets it)."""
    if email and not EMAIL.fullmatch(email):
        raise StripeError(
            400, f"Invalid email address: {email}", code="email_invalid", param="email"
        )


@routes("POST", "/v1/customers")
def create_customer(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(CUSTOMER_SPEC)
    check_email(p.get("email"))
    clock = p.get("test_clock")
    if clock:
        emu.get("test_helpers.test_clock", clock, "test_clock")
    return create_customer_record(
        emu,
        email=p.get("email") or None,
        name=p.get("name") or None,
        metadata=merge_metadata({}, p.get("metadata")),
        test_clock=clock,
        description=p.get("description") or None,
        phone=p.get("phone") or None,
        payment_method=p.get("payment_method"),
        preferred_locales=p.get("preferred_locales"),
    )


def create_customer_record(
    emu: Emulator,
    *,
    email: str | None,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
    test_clock: str | None = None,
    description: str | None = None,
    phone: str | None = None,
    payment_method: str | None = None,
    preferred_locales: list[str] | None = None,
) -> dict[str, Any]:
    cid = emu.new_id("cus_")
    created = emu.now()
    if test_clock:
        created = int(emu.get("test_helpers.test_clock", test_clock)["frozen_time"])
    cus = objects.customer(
        cid, created, email=email, name=name, metadata=metadata or {}, test_clock=test_clock
    )
    cus["description"] = description
    cus["phone"] = phone
    cus["preferred_locales"] = list(preferred_locales or [])
    emu.store.add(cus)
    emu.emit("customer.created", cus)
    if payment_method:
        pm = attach_payment_method(emu, payment_method, cid)
        set_default_payment_method(emu, cus, pm["id"])
    return cus


@routes("GET", f"/v1/customers/{ID}")
def get_customer(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    stub = emu.store.objects.get(oid)
    if stub and stub.get("deleted") and stub["object"] == "customer":
        return stub  # Stripe answers a deleted customer with its stub, not a 404
    return emu.get("customer", oid)


@routes("DELETE", f"/v1/customers/{ID}")
def delete_customer(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    """Delete a customer: its subscriptions are canceled first, as Stripe does."""
    from .billing import cancel_now

    req.parse({})
    cus = emu.get("customer", oid)
    for sub in emu.store.all("subscription"):
        if sub["customer"] == oid and sub["status"] not in ("canceled", "incomplete_expired"):
            cancel_now(emu, sub)
    emu.emit("customer.deleted", cus)
    stub = {"id": oid, "object": "customer", "deleted": True}
    emu.store.objects[oid] = stub
    return stub


@routes("POST", f"/v1/customers/{ID}")
def update_customer(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({k: v for k, v in CUSTOMER_SPEC.items() if k != "test_clock"})
    check_email(p.get("email"))
    cus = emu.get("customer", oid)
    before = copy.deepcopy(cus)
    for key in ("email", "name", "description", "phone"):
        if key in p:
            cus[key] = p[key] or None
    if "preferred_locales" in p:
        cus["preferred_locales"] = p["preferred_locales"]
    if "metadata" in p:
        cus["metadata"] = merge_metadata(cus["metadata"], p["metadata"])
        if req.params.get("metadata") == "":
            cus["metadata"] = {}
    default_pm = p.get("invoice_settings", {}).get("default_payment_method")
    if default_pm:
        pm = emu.get("payment_method", default_pm, "invoice_settings[default_payment_method]")
        if pm["customer"] != cus["id"]:
            raise invalid(
                "invoice_settings[default_payment_method]",
                f"The customer does not have a payment method with the ID {default_pm}.",
                "resource_missing",
            )
        cus["invoice_settings"]["default_payment_method"] = default_pm
    emit_updated(emu, "customer.updated", before, cus)
    return cus


def emit_updated(
    emu: Emulator, event_type: str, before: dict[str, Any], after: dict[str, Any]
) -> None:
    """Emit ``*.updated`` with ``previous_attributes`` holding the old top-level values."""
    previous = {k: copy.deepcopy(before.get(k)) for k in after if before.get(k) != after[k]}
    if previous:
        emu.emit(event_type, after, previous)


@routes("GET", "/v1/customers")
def list_customers(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "email": "str", "created": "range", "test_clock": "str"})
    items = filtered(
        emu.store.all("customer"), email=p.get("email"), test_clock=p.get("test_clock")
    )
    return paginate(created_filter(items, p.get("created")), p, "/v1/customers")


@routes("GET", f"/v1/customers/{ID}/payment_methods")
def list_customer_payment_methods(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "type": "str"})
    emu.get("customer", oid)
    items = filtered(emu.store.all("payment_method"), customer=oid, type=p.get("type"))
    return paginate(items, p, f"/v1/customers/{oid}/payment_methods")


# --- products and prices ----------------------------------------------------------------
PRODUCT_SPEC = {
    "name": "str",
    "description": "str",
    "metadata": "meta",
    "active": "bool",
    "id": "str",
    "tax_code": "str",
    "unit_label": "str",
    "statement_descriptor": "str",
}


@routes("POST", "/v1/products")
def create_product(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(PRODUCT_SPEC)
    if not p.get("name"):
        raise missing("name")
    return create_product_record(emu, p)


def create_product_record(emu: Emulator, p: dict[str, Any]) -> dict[str, Any]:
    pid = p.get("id") or emu.new_id("prod_")
    if emu.store.get(pid):
        raise invalid("id", f"Product already exists: {pid}", "resource_already_exists")
    prod = objects.product(
        pid,
        emu.now(),
        name=p["name"],
        metadata=merge_metadata({}, p.get("metadata")),
        active=p.get("active", True),
        description=p.get("description"),
        unit_label=p.get("unit_label"),
        tax_code=p.get("tax_code"),
    )
    emu.store.add(prod)
    emu.emit("product.created", prod)
    return prod


@routes("GET", f"/v1/products/{ID}")
def get_product(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("product", oid)


@routes("POST", f"/v1/products/{ID}")
def update_product(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({k: v for k, v in PRODUCT_SPEC.items() if k != "id"})
    prod = emu.get("product", oid)
    before = copy.deepcopy(prod)
    for key in ("name", "description", "active"):
        if key in p:
            prod[key] = p[key]
    if "metadata" in p:
        prod["metadata"] = merge_metadata(prod["metadata"], p["metadata"])
    prod["updated"] = emu.now()
    emit_updated(emu, "product.updated", before, prod)
    return prod


@routes("GET", "/v1/products")
def list_products(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "active": "bool", "ids": "strs", "created": "range"})
    items = filtered(emu.store.all("product"), active=p.get("active"))
    if p.get("ids"):
        items = [o for o in items if o["id"] in p["ids"]]
    return paginate(created_filter(items, p.get("created")), p, "/v1/products")


@routes("GET", f"/v1/products/{ID}/features")
def list_product_features(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse(LIST_SPEC)
    emu.get("product", oid)
    return paginate([], p, f"/v1/products/{oid}/features")


PRICE_SPEC = {
    "product": "str",
    "product_data": {"name": "str", "metadata": "meta"},
    "unit_amount": "int",
    "currency": "str",
    "recurring": {"interval": "str", "interval_count": "int", "usage_type": "str"},
    "lookup_key": "str",
    "transfer_lookup_key": "bool",
    "nickname": "str",
    "metadata": "meta",
    "active": "bool",
    "tax_behavior": "str",
}


@routes("POST", "/v1/prices")
def create_price(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(PRICE_SPEC)
    for name in ("currency", "unit_amount"):
        if name not in p:
            raise missing(name)
    if "product" in p:
        product_id = emu.get("product", p["product"], "product")["id"]
    elif "product_data" in p:
        product_id = create_product_record(emu, p["product_data"])["id"]
    else:
        raise missing("product")
    recurring = p.get("recurring")
    if recurring and recurring.get("interval") not in ("day", "week", "month", "year"):
        raise invalid(
            "recurring[interval]", "Invalid recurring[interval]", "parameter_invalid_empty"
        )
    lookup_key = p.get("lookup_key") or None
    if lookup_key:
        for other in emu.store.all("price"):
            if other["lookup_key"] == lookup_key:
                if not p.get("transfer_lookup_key"):
                    raise invalid(
                        "lookup_key",
                        f"A price (`{other['id']}`) already uses that lookup key.",
                        "resource_already_exists",
                    )
                other["lookup_key"] = None
    price = objects.price(
        emu.new_id("price_"),
        emu.now(),
        product=product_id,
        unit_amount=p["unit_amount"],
        currency=p["currency"].lower(),
        recurring=recurring,
        lookup_key=lookup_key,
        nickname=p.get("nickname"),
        metadata=merge_metadata({}, p.get("metadata")),
        active=p.get("active", True),
    )
    emu.store.add(price)
    emu.emit("price.created", price)
    if price["recurring"]:
        emu.emit("plan.created", objects.plan_from(price))
    return price


@routes("GET", f"/v1/prices/{ID}")
def get_price(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("price", oid)


@routes("POST", f"/v1/prices/{ID}")
def update_price(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({"active": "bool", "metadata": "meta", "nickname": "str", "lookup_key": "str"})
    price = emu.get("price", oid)
    before = copy.deepcopy(price)
    for key in ("active", "nickname", "lookup_key"):
        if key in p:
            price[key] = p[key] if p[key] != "" else None
    if "metadata" in p:
        price["metadata"] = merge_metadata(price["metadata"], p["metadata"])
    emit_updated(emu, "price.updated", before, price)
    return price


@routes("GET", "/v1/prices")
def list_prices(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(
        {
            **LIST_SPEC,
            "active": "bool",
            "product": "str",
            "lookup_keys": "strs",
            "type": "str",
            "currency": "str",
            "created": "range",
            "recurring": {"interval": "str"},
        }
    )
    items = filtered(
        emu.store.all("price"),
        active=p.get("active"),
        product=p.get("product"),
        type=p.get("type"),
        currency=p.get("currency"),
    )
    if p.get("lookup_keys"):
        items = [o for o in items if o["lookup_key"] in p["lookup_keys"]]
    interval = p.get("recurring", {}).get("interval")
    if interval:
        items = [o for o in items if (o["recurring"] or {}).get("interval") == interval]
    return paginate(created_filter(items, p.get("created")), p, "/v1/prices")


# --- payment methods --------------------------------------------------------------------
def create_payment_method(
    emu: Emulator,
    number: str,
    exp_month: int = 12,
    exp_year: int = 2034,
    customer: str | None = None,
) -> dict[str, Any]:
    pm = objects.payment_method(
        emu.new_id("pm_"),
        emu.now_for(customer),
        number=number,
        exp_month=exp_month,
        exp_year=exp_year,
        customer=None,
    )
    emu.store.add(pm)
    emu.store.note(pm["id"])["card"] = number
    if customer:
        pm["customer"] = customer
        emu.emit("payment_method.attached", pm)
    return pm


def attach_payment_method(emu: Emulator, pm_id: str, customer_id: str) -> dict[str, Any]:
    emu.get("customer", customer_id, "customer")
    if pm_id in TEST_PM_TOKENS:
        return create_payment_method(emu, TEST_PM_TOKENS[pm_id], customer=customer_id)
    pm = emu.get("payment_method", pm_id)
    if pm["customer"] and pm["customer"] != customer_id:
        raise invalid("payment_method", "This PaymentMethod is attached to another customer.")
    if pm["customer"] != customer_id:
        pm["customer"] = customer_id
        emu.emit("payment_method.attached", pm)
    return pm


def set_default_payment_method(emu: Emulator, cus: dict[str, Any], pm_id: str) -> None:
    before = copy.deepcopy(cus)
    cus["invoice_settings"]["default_payment_method"] = pm_id
    emit_updated(emu, "customer.updated", before, cus)


@routes("GET", f"/v1/payment_methods/{ID}")
def get_payment_method(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("payment_method", oid)


@routes("POST", f"/v1/payment_methods/{ID}/attach")
def attach(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({"customer": "str"})
    if "customer" not in p:
        raise missing("customer")
    return attach_payment_method(emu, oid, p["customer"])


@routes("POST", f"/v1/payment_methods/{ID}/detach")
def detach(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    pm = emu.get("payment_method", oid)
    if pm["customer"]:
        previous = {"customer": pm["customer"]}
        pm["customer"] = None
        emu.emit("payment_method.detached", pm, previous)
    return pm


@routes("GET", "/v1/payment_methods")
def list_payment_methods(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "customer": "str", "type": "str"})
    items = filtered(
        emu.store.all("payment_method"), customer=p.get("customer"), type=p.get("type")
    )
    return paginate(items, p, "/v1/payment_methods")


# --- payments: intents, charges, balance transactions -----------------------------------
@routes("GET", f"/v1/payment_intents/{ID}")
def get_payment_intent(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({"client_secret": "str"})
    return emu.get("payment_intent", oid)


@routes("GET", "/v1/payment_intents")
def list_payment_intents(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "customer": "str", "created": "range"})
    items = filtered(emu.store.all("payment_intent"), customer=p.get("customer"))
    return paginate(created_filter(items, p.get("created")), p, "/v1/payment_intents")


@routes("GET", f"/v1/charges/{ID}")
def get_charge(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("charge", oid)


@routes("GET", "/v1/charges")
def list_charges(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "customer": "str", "payment_intent": "str", "created": "range"})
    items = filtered(
        emu.store.all("charge"), customer=p.get("customer"), payment_intent=p.get("payment_intent")
    )
    return paginate(created_filter(items, p.get("created")), p, "/v1/charges")


@routes("GET", f"/v1/balance_transactions/{ID}")
def get_balance_transaction(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("balance_transaction", oid)


# --- refunds ----------------------------------------------------------------------------
@routes("POST", "/v1/refunds")
def create_refund(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(
        {
            "payment_intent": "str",
            "charge": "str",
            "amount": "int",
            "reason": "str",
            "metadata": "meta",
        }
    )
    if "charge" in p:
        ch = emu.get("charge", p["charge"], "charge")
    elif "payment_intent" in p:
        pi = emu.get("payment_intent", p["payment_intent"], "payment_intent")
        if not pi["latest_charge"] or pi["status"] != "succeeded":
            raise invalid(
                "payment_intent",
                f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                "charge_not_refundable",
            )
        ch = emu.get("charge", pi["latest_charge"])
    else:
        raise missing("charge")
    remaining = ch["amount"] - ch["amount_refunded"]
    amount = p.get("amount", remaining)
    if ch["status"] != "succeeded" or remaining <= 0:
        raise StripeError(
            400, f"Charge {ch['id']} has already been refunded.", code="charge_already_refunded"
        )
    if amount <= 0 or amount > remaining:
        raise invalid(
            "amount",
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            "amount_too_large" if amount > 0 else "parameter_invalid_integer",
        )
    if p.get("reason") not in (None, "duplicate", "fraudulent", "requested_by_customer"):
        raise invalid("reason", f"Invalid reason: {p['reason']}")
    at = emu.now_for(ch)
    rid = emu.new_id("re_")
    txn = objects.balance_transaction(
        emu.new_id("txn_"), at, amount=-amount, currency=ch["currency"], source=rid, kind="refund"
    )
    emu.store.add(txn)
    ref = objects.refund(
        rid,
        at,
        amount=amount,
        currency=ch["currency"],
        charge=ch["id"],
        customer=ch["customer"],
        payment_intent=ch["payment_intent"],
        payment_method=ch["payment_method"],
        balance_transaction=txn["id"],
        reason=p.get("reason"),
    )
    ref["metadata"] = merge_metadata({}, p.get("metadata"))
    later = REFUND_CARDS.get(emu.store.notes.get(ch["payment_method"] or "", {}).get("card", ""))
    if later == "pending":
        ref["status"] = "pending"
    emu.store.add(ref)
    emu.emit("refund.created", ref)
    previous = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
    ch["amount_refunded"] += amount
    ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
    emu.emit("charge.refunded", ch, previous)
    if later:
        emu.schedule("refund_settle", rid, at + REFUND_SETTLE_SECONDS, owner=ch)
    return ref


@task("refund_settle")
def settle_refund(emu: Emulator, refund_id: str) -> None:
    """The card network's answer, some time after the refund: 7726 succeeds, 5126 fails."""
    ref = emu.get("refund", refund_id)
    ch = emu.get("charge", ref["charge"])
    before = copy.deepcopy(ref)
    if REFUND_CARDS.get(emu.store.notes.get(ch["payment_method"] or "", {}).get("card", "")) == (
        "pending"
    ):
        ref["status"] = "succeeded"
        emu.emit("charge.refund.updated", ref, {"status": before["status"]})
        emu.emit("refund.updated", ref, {"status": before["status"]})
        return
    # The refund failed: its amount comes back to the balance and off the charge's refunds.
    at = emu.now_for(ch)
    txn = objects.balance_transaction(
        emu.new_id("txn_"),
        at,
        amount=ref["amount"],
        currency=ref["currency"],
        source=refund_id,
        kind="refund_failure",
    )
    txn["reporting_category"] = "refund_failure"
    emu.store.add(txn)
    ref.update(
        status="failed",
        failure_reason="expired_or_canceled_card",
        failure_balance_transaction=txn["id"],
    )
    ch["amount_refunded"] -= ref["amount"]
    ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
    previous = {k: before[k] for k in ("status", "failure_reason", "failure_balance_transaction")}
    emu.emit("charge.refund.updated", ref, previous)
    emu.emit("refund.updated", ref, previous)
    emu.emit("refund.failed", ref)


@routes("GET", f"/v1/refunds/{ID}")
def get_refund(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("refund", oid)


@routes("GET", "/v1/refunds")
def list_refunds(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "charge": "str", "payment_intent": "str", "created": "range"})
    items = filtered(
        emu.store.all("refund"), charge=p.get("charge"), payment_intent=p.get("payment_intent")
    )
    return paginate(created_filter(items, p.get("created")), p, "/v1/refunds")


# --- events -----------------------------------------------------------------------------
@routes("GET", f"/v1/events/{ID}")
def get_event(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("event", oid)


@routes("GET", "/v1/events")
def list_events(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(
        {
            **LIST_SPEC,
            "type": "str",
            "types": "strs",
            "created": "range",
            "delivery_success": "bool",
        }
    )
    items = emu.store.all("event")
    if p.get("type"):
        pattern = p["type"]
        if pattern.endswith("*"):
            items = [e for e in items if e["type"].startswith(pattern[:-1])]
        else:
            items = [e for e in items if e["type"] == pattern]
    if p.get("types"):
        items = [e for e in items if e["type"] in p["types"]]
    return paginate(created_filter(items, p.get("created")), p, "/v1/events")


# --- webhook endpoints ------------------------------------------------------------------
WEBHOOK_SPEC = {
    "url": "str",
    "enabled_events": "strs",
    "api_version": "str",
    "description": "str",
    "metadata": "meta",
    "connect": "bool",
}


@routes("POST", "/v1/webhook_endpoints")
def create_webhook_endpoint(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(WEBHOOK_SPEC)
    if "url" not in p:
        raise missing("url")
    if not p.get("enabled_events"):
        raise missing("enabled_events")
    shown = emu._create_endpoint(p["url"], None, p["enabled_events"], p.get("api_version"))
    endpoint = emu.get("webhook_endpoint", shown["id"])
    endpoint["description"] = p.get("description")
    endpoint["metadata"] = merge_metadata({}, p.get("metadata"))
    shown.update(description=endpoint["description"], metadata=endpoint["metadata"])
    return shown


@routes("GET", f"/v1/webhook_endpoints/{ID}")
def get_webhook_endpoint(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("webhook_endpoint", oid)


@routes("POST", f"/v1/webhook_endpoints/{ID}")
def update_webhook_endpoint(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({**WEBHOOK_SPEC, "disabled": "bool"})
    endpoint = emu.get("webhook_endpoint", oid)
    if "url" in p:
        from .webhooks import is_loopback_url

        if not is_loopback_url(p["url"]):
            raise invalid("url", f"Invalid URL: {p['url']} (loopback only)", "url_invalid")
        endpoint["url"] = p["url"]
    if "enabled_events" in p:
        endpoint["enabled_events"] = p["enabled_events"]
    if "disabled" in p:
        endpoint["status"] = "disabled" if p["disabled"] else "enabled"
    if "metadata" in p:
        endpoint["metadata"] = merge_metadata(endpoint["metadata"], p["metadata"])
    return endpoint


@routes("GET", "/v1/webhook_endpoints")
def list_webhook_endpoints(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(LIST_SPEC)
    return paginate(emu.store.all("webhook_endpoint"), p, "/v1/webhook_endpoints")


@routes("DELETE", f"/v1/webhook_endpoints/{ID}")
def delete_webhook_endpoint(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    emu.get("webhook_endpoint", oid)
    emu.store.remove(oid)
    emu.dispatcher.callables.pop(oid, None)
    return {"id": oid, "object": "webhook_endpoint", "deleted": True}


# --- billing portal ---------------------------------------------------------------------
@routes("POST", "/v1/billing_portal/sessions")
def create_portal_session(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(
        {
            "customer": "str",
            "return_url": "str",
            "configuration": "str",
            "flow_data": "any",
            "locale": "str",
            "on_behalf_of": "str",
        }
    )
    if "customer" not in p:
        raise missing("customer")
    cus = emu.get("customer", p["customer"], "customer")
    from .portal import default_configuration

    if p.get("configuration"):
        config = emu.get("billing_portal.configuration", p["configuration"], "configuration")
        if not config["active"]:
            raise invalid("configuration", "The configuration is not active.")
    else:
        config = default_configuration(emu)
    bid = emu.new_id("bps_")
    session = objects.portal_session(
        bid,
        emu.now_for(cus),
        customer=cus["id"],
        return_url=p.get("return_url"),
        url=f"{emu.base_url}/portal/{bid}",
        configuration=config["id"],
    )
    session["locale"] = p.get("locale")
    emu.store.add(session)
    emu.emit("billing_portal.session.created", session)
    return session


# --- invoice items and invoice payments --------------------------------------------------
@routes("GET", f"/v1/invoiceitems/{ID}")
def get_invoice_item(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("invoiceitem", oid)


@routes("GET", "/v1/invoiceitems")
def list_invoice_items(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "customer": "str", "invoice": "str", "pending": "bool"})
    items = filtered(
        emu.store.all("invoiceitem"), customer=p.get("customer"), invoice=p.get("invoice")
    )
    if "pending" in p:
        items = [i for i in items if (i["invoice"] is None) == p["pending"]]
    return paginate(items, p, "/v1/invoiceitems")


@routes("GET", f"/v1/invoice_payments/{ID}")
def get_invoice_payment(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("invoice_payment", oid)


@routes("GET", "/v1/invoice_payments")
def list_invoice_payments(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "invoice": "str", "payment": "any", "status": "str"})
    items = filtered(
        emu.store.all("invoice_payment"), invoice=p.get("invoice"), status=p.get("status")
    )
    return paginate(items, p, "/v1/invoice_payments")
