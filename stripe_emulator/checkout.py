"""Checkout Sessions: creation, listing, expiry and completion (shared by the hosted page,
the admin API and ``Emulator.complete_checkout``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import objects
from .api import (
    attach_payment_method,
    create_customer_record,
    create_payment_method,
    filtered,
    set_default_payment_method,
)
from .billing import DECLINE_CARD, charge, create_subscription
from .core import Request, Routes
from .errors import StripeError, card_declined, invalid, missing
from .listing import LIST_SPEC, paginate
from .params import merge_metadata

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
ID = r"(?P<oid>cs_[^/]+)"

SESSION_SPEC = {
    "mode": "str",
    "customer": "str",
    "customer_email": "str",
    "customer_creation": "str",
    "line_items": [{"price": "str", "quantity": "int"}],
    "success_url": "str",
    "cancel_url": "str",
    "client_reference_id": "str",
    "metadata": "meta",
    "subscription_data": {"metadata": "meta", "description": "str"},
    "payment_intent_data": {"metadata": "meta", "description": "str"},
    "allow_promotion_codes": "bool",
    "payment_method_types": "strs",
    "billing_address_collection": "str",
    "locale": "str",
    "expires_at": "int",
    "ui_mode": "str",
}
TEST_CARDS = {
    "4242424242424242": "succeeds",
    "5555555555554444": "succeeds",
    DECLINE_CARD: "is declined (card_declined)",
    "4000000000000341": "attaches and pays now; later charges (renewals) fail",
}


@routes("POST", "/v1/checkout/sessions")
def create_session(emu: Emulator, req: Request) -> dict:
    p = req.parse(SESSION_SPEC)
    mode = p.get("mode")
    if mode is None:
        raise missing("mode")
    if mode not in ("payment", "subscription"):
        raise invalid("mode", f"Invalid mode: {mode} (the emulator supports payment, subscription)")
    if not p.get("success_url"):
        raise missing("success_url")
    if "customer" in p and "customer_email" in p:
        raise StripeError(
            400,
            "You may only specify one of these parameters: customer, customer_email.",
            code="parameters_exclusive",
            param="customer_email",
        )
    cus = emu.get("customer", p["customer"], "customer") if "customer" in p else None
    if len(p.get("client_reference_id") or "") > 200:
        raise invalid("client_reference_id", "client_reference_id is limited to 200 characters.")
    creation = p.get("customer_creation")
    if creation is not None and (mode != "payment" or creation not in ("always", "if_required")):
        raise invalid(
            "customer_creation",
            "customer_creation can only be used in payment mode with 'always' or 'if_required'.",
        )
    if mode == "payment" and "subscription_data" in p:
        raise invalid(
            "subscription_data", "subscription_data can only be used in subscription mode."
        )
    if mode == "subscription" and "payment_intent_data" in p:
        raise invalid(
            "payment_intent_data", "payment_intent_data can only be used in payment mode."
        )
    if not p.get("line_items"):
        raise missing("line_items")
    sid = "cs_test_" + emu.new_id("")[:58]
    items = []
    for i, spec in enumerate(p["line_items"]):
        if "price" not in spec:
            raise missing(f"line_items[{i}][price]")
        price = emu.get("price", spec["price"], f"line_items[{i}][price]")
        if not price["active"]:
            raise invalid(f"line_items[{i}][price]", f"The price {price['id']} is not active.")
        if (price["type"] == "recurring") != (mode == "subscription"):
            raise invalid(
                f"line_items[{i}][price]",
                "You must provide at least one recurring price in `subscription` mode and only "
                "one-time prices in `payment` mode.",
            )
        product = emu.get("product", price["product"])
        quantity = spec.get("quantity", 1)
        items.append(
            objects.checkout_line_item(emu.new_id("li_"), price, quantity, product["name"])
        )
    total = sum(i["amount_total"] for i in items)
    at = emu.now_for(cus)
    session = objects.checkout_session(
        sid,
        at,
        mode=mode,
        customer=cus["id"] if cus else None,
        customer_email=p.get("customer_email"),
        customer_creation=creation or ("if_required" if mode == "payment" and not cus else None),
        client_reference_id=p.get("client_reference_id"),
        metadata=merge_metadata({}, p.get("metadata")),
        success_url=p["success_url"],
        cancel_url=p.get("cancel_url"),
        currency=items[0]["currency"],
        amount_total=total,
        allow_promotion_codes=p.get("allow_promotion_codes"),
        url=f"{emu.base_url}/checkout/{sid}",
        payment_method_collection="always" if mode == "subscription" else None,
        invoice_creation=None,
    )
    if "expires_at" in p:
        session["expires_at"] = p["expires_at"]
    session["locale"] = p.get("locale")
    emu.store.add(session)
    note = emu.store.note(sid)
    note["line_items"] = items
    note["subscription_data"] = p.get("subscription_data", {})
    note["payment_intent_data"] = p.get("payment_intent_data", {})
    return session


@routes("GET", f"/v1/checkout/sessions/{ID}")
def get_session(emu: Emulator, req: Request, oid: str) -> dict:
    req.parse({})
    return emu.get("checkout.session", oid)


@routes("GET", f"/v1/checkout/sessions/{ID}/line_items")
def get_line_items(emu: Emulator, req: Request, oid: str) -> dict:
    p = req.parse(LIST_SPEC)
    emu.get("checkout.session", oid)
    items = list(emu.store.note(oid).get("line_items", []))
    return paginate(items, p, f"/v1/checkout/sessions/{oid}/line_items")


@routes("POST", f"/v1/checkout/sessions/{ID}/expire")
def expire_session(emu: Emulator, req: Request, oid: str) -> dict:
    req.parse({})
    session = emu.get("checkout.session", oid)
    if session["status"] != "open":
        raise invalid(
            "session", f"Only Checkout Sessions with a status of open can be expired ({oid})."
        )
    session.update(status="expired", url=None)
    emu.emit("checkout.session.expired", session)
    return session


@routes("GET", "/v1/checkout/sessions")
def list_sessions(emu: Emulator, req: Request) -> dict:
    p = req.parse(
        {
            **LIST_SPEC,
            "customer": "str",
            "payment_intent": "str",
            "subscription": "str",
            "status": "str",
        }
    )
    items = filtered(
        emu.store.all("checkout.session"),
        customer=p.get("customer"),
        payment_intent=p.get("payment_intent"),
        subscription=p.get("subscription"),
        status=p.get("status"),
    )
    return paginate(items, p, "/v1/checkout/sessions")


def success_url(session: dict[str, Any]) -> str:
    return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])


def normalise_card(number: str) -> str:
    return "".join(ch for ch in str(number) if ch.isdigit())


def complete(
    emu: Emulator,
    session_id: str,
    card: str = "4242424242424242",
    *,
    email: str | None = None,
    name: str | None = None,
    exp_month: int = 12,
    exp_year: int = 2034,
) -> dict:
    """Pay an open session with a test card. Declines raise a 402 and leave it open."""
    session = emu.get("checkout.session", session_id)
    if session["status"] != "open":
        raise invalid("session", f"This Checkout Session is no longer open ({session['status']}).")
    number = normalise_card(card)
    if len(number) < 12:
        raise StripeError(
            402,
            "Your card number is incomplete.",
            type="card_error",
            code="incorrect_number",
            param="number",
        )
    if number == DECLINE_CARD:
        raise card_declined()
    note = emu.store.note(session_id)
    email = email or session["customer_email"]
    cus = emu.store.get(session["customer"]) if session["customer"] else None
    if cus is None and (
        session["mode"] == "subscription" or session["customer_creation"] == "always"
    ):
        cus = create_customer_record(
            emu, email=email or "customer@example.invalid", name=name, metadata={}
        )
    pm = create_payment_method(emu, number, exp_month, exp_year)
    if cus is not None:
        attach_payment_method(emu, pm["id"], cus["id"])
    if session["mode"] == "subscription":
        assert cus is not None
        set_default_payment_method(emu, cus, pm["id"])
        items = [(emu.get("price", li["price"]["id"]), li["quantity"]) for li in note["line_items"]]
        sub_data = note.get("subscription_data", {})
        sub, inv = create_subscription(
            emu,
            cus,
            items,
            metadata=sub_data.get("metadata", {}),
            pm_id=pm["id"],
            description=sub_data.get("description"),
        )
        session.update(subscription=sub["id"], invoice=inv["id"])
    else:
        pi_data = note.get("payment_intent_data", {})
        pi, _, _ = charge(
            emu,
            customer=cus["id"] if cus else None,
            amount=session["amount_total"],
            currency=session["currency"],
            pm_id=pm["id"],
            description=pi_data.get("description"),
            metadata=pi_data.get("metadata", {}),
            purpose="checkout",
        )
        session["payment_intent"] = pi["id"]
    details = objects.new(
        "checkout.session.customer_details",
        email=(cus or {}).get("email") or email,
        name=(cus or {}).get("name") or name,
        tax_exempt="none",
        tax_ids=[],
    )
    session.update(
        status="complete",
        payment_status="paid",
        customer=cus["id"] if cus else None,
        customer_details=details,
        url=None,
    )
    emu.emit("checkout.session.completed", session)
    return session
