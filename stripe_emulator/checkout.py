"""Checkout Sessions: creation, listing, expiry and completion (shared by the hosted page,
the admin API and ``Emulator.complete_checkout``)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import objects
from .api import (
    attach_payment_method,
    create_customer_record,
    create_payment_method,
    filtered,
    set_default_payment_method,
)
from .billing import (
    DECLINE_CARD,
    charge,
    create_invoice,
    create_subscription,
    finalize_invoice,
    invoice_paid,
)
from .core import Request, Routes, task
from .discounts import amount_off, by_code, redeem, resolve
from .errors import StripeError, card_declined, invalid, missing
from .invoicing import one_time_item, stand_in
from .listing import LIST_SPEC, paginate
from .params import merge_metadata
from .sca import AUTH_ALWAYS, AUTH_ON_SESSION, SCA_CARDS

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
    "subscription_data": {
        "metadata": "meta",
        "description": "str",
        "trial_period_days": "int",
        "trial_end": "int",
    },
    "payment_intent_data": {"metadata": "meta", "description": "str"},
    "allow_promotion_codes": "bool",
    "discounts": [{"coupon": "str", "promotion_code": "str"}],
    "payment_method_types": "strs",
    "billing_address_collection": "str",
    "locale": "str",
    "expires_at": "int",
    "ui_mode": "str",
    "invoice_creation": {
        "enabled": "bool",
        "invoice_data": {"description": "str", "metadata": "meta", "footer": "str"},
    },
}
TEST_CARDS = {
    "4242424242424242": "succeeds",
    "5555555555554444": "succeeds",
    DECLINE_CARD: "is declined (card_declined)",
    "4000000000000341": "attaches and pays now; later charges (renewals) fail",
    AUTH_ON_SESSION: "asks for 3-D Secure here; renewals go through",
    AUTH_ALWAYS: "asks for 3-D Secure here and at every renewal",
    "4000000000000259": "pays, then is disputed as fraudulent",
    "4000000000001976": "pays, then an inquiry (no money moves)",
    "4000000000005126": "pays; a refund fails later",
}


@routes("POST", "/v1/checkout/sessions")
def create_session(emu: Emulator, req: Request) -> dict[str, Any]:
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
    invoicing = p.get("invoice_creation", {})
    if invoicing and "enabled" not in invoicing:
        raise missing("invoice_creation[enabled]")
    if invoicing and mode != "payment":
        raise invalid("invoice_creation", "invoice_creation can only be used in payment mode.")
    if p.get("discounts") and p.get("allow_promotion_codes"):
        raise StripeError(
            400,
            "You may only specify one of these parameters: allow_promotion_codes, discounts.",
            code="parameters_exclusive",
            param="discounts",
        )
    if len(p.get("discounts") or []) > 1:
        raise invalid("discounts", "Only one discount per Checkout Session is supported.")
    chosen = [resolve(emu, spec, "discounts[0]") for spec in p.get("discounts") or []]
    trial = p.get("subscription_data", {})
    if "trial_period_days" in trial and "trial_end" in trial:
        raise invalid(
            "subscription_data[trial_end]",
            "You may only specify one of trial_end and trial_period_days.",
        )
    if not 1 <= trial.get("trial_period_days", 1) <= 730:
        raise invalid(
            "subscription_data[trial_period_days]",
            "trial_period_days must be between 1 and 730.",
            "parameter_invalid_integer",
        )
    if "trial_end" in trial and trial["trial_end"] < emu.now_for(cus) + 2 * 86400:
        raise invalid(
            "subscription_data[trial_end]",
            "trial_end must be at least 48 hours in the future.",
            "parameter_invalid_integer",
        )
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
        invoice_creation=_invoice_creation(invoicing) if mode == "payment" else None,
    )
    if "expires_at" in p:
        session["expires_at"] = p["expires_at"]
    session["locale"] = p.get("locale")
    methods = p.get("payment_method_types")
    if methods:
        unknown = set(methods) - {"card", "us_bank_account"}
        if unknown:
            raise invalid(
                "payment_method_types",
                f"The emulator supports card and us_bank_account, not {sorted(unknown)}.",
            )
        session["payment_method_types"] = list(methods)
    elif mode == "payment" and session["currency"] == "usd":
        # Dynamic payment methods: a USD payment also offers ACH Direct Debit.
        session["payment_method_types"] = ["card", "us_bank_account"]
    emu.store.add(session)
    note = emu.store.note(sid)
    if chosen:
        apply_to_session(emu, session, *chosen[0])
    note["line_items"] = items
    note["subscription_data"] = p.get("subscription_data", {})
    note["payment_intent_data"] = p.get("payment_intent_data", {})
    return session


def _invoice_creation(spec: dict[str, Any]) -> dict[str, Any]:
    """``session.invoice_creation`` as Stripe shows it (disabled unless asked for)."""
    data = spec.get("invoice_data", {})
    return {
        "enabled": bool(spec.get("enabled")),
        "invoice_data": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": data.get("description"),
            "footer": data.get("footer"),
            "issuer": None,
            "metadata": merge_metadata({}, data.get("metadata")),
            "rendering_options": None,
        },
    }


def post_payment_invoice(
    emu: Emulator, session: dict[str, Any], cus: dict[str, Any], pi: dict[str, Any]
) -> dict[str, Any]:
    """``invoice_creation``: once the payment succeeds, a paid invoice (the receipt) for what
    was bought, one line per line item described by its product, linked to the session."""
    data = session["invoice_creation"]["invoice_data"]
    at = emu.now_for(cus)
    items = [
        one_time_item(emu, cus, line["price"], line["quantity"], line["description"])
        for line in emu.store.note(session["id"])["line_items"]
    ]
    # The session's discount (a coupon or promotion code) is on the receipt too, so the
    # invoice's total is what the PaymentIntent charged.
    stand = stand_in(cus, session["currency"])
    breakdown = session["total_details"].get("breakdown") or {}
    stand["discounts"] = [d["discount"]["id"] for d in breakdown.get("discounts") or []]
    inv = create_invoice(
        emu, stand, "manual", period_start=at, period_end=at, with_sub_lines=False, pending=items,
    )  # fmt: skip
    inv.update(
        description=data["description"],
        footer=data["footer"],
        metadata=dict(data["metadata"]),
        auto_advance=False,
    )
    finalize_invoice(emu, inv)
    before = copy.deepcopy(inv)
    inv.update(attempted=True, attempt_count=1)
    payment = objects.invoice_payment(emu.new_id("inpay_"), at, invoice_id=inv["id"], pi=pi)
    emu.store.add(payment)
    invoice_paid(emu, inv, payment, before)
    return inv


@routes("GET", f"/v1/checkout/sessions/{ID}")
def get_session(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("checkout.session", oid)


@routes("GET", f"/v1/checkout/sessions/{ID}/line_items")
def get_line_items(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse(LIST_SPEC)
    emu.get("checkout.session", oid)
    items = list(emu.store.note(oid).get("line_items", []))
    return paginate(items, p, f"/v1/checkout/sessions/{oid}/line_items")


@routes("POST", f"/v1/checkout/sessions/{ID}/expire")
def expire_session(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
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
def list_sessions(emu: Emulator, req: Request) -> dict[str, Any]:
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
    return str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])


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
    bank_account: str | None = None,
    promotion_code: str | None = None,
    three_d_secure: str = "complete",
) -> dict[str, Any]:
    """Pay an open session with a test card (or, with ``bank_account``, a US bank account).

    Declines raise a 402 and leave it open. A bank debit completes the session unpaid; the
    payment settles (or fails) ``ASYNC_SETTLE_SECONDS`` later on the session's clock.
    """
    session = emu.get("checkout.session", session_id)
    if session["status"] != "open":
        raise invalid("session", f"This Checkout Session is no longer open ({session['status']}).")
    if promotion_code:  # typed on the page
        if not session["allow_promotion_codes"]:
            raise invalid("promotion_code", "This Checkout Session does not take promotion codes.")
        promo = by_code(emu, promotion_code)
        apply_to_session(emu, session, emu.get("coupon", promo["promotion"]["coupon"]), promo)
    if bank_account is not None:
        return _complete_with_bank_debit(emu, session, bank_account, email=email, name=name)
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
    if number in SCA_CARDS and three_d_secure != "complete":  # the customer failed 3-D Secure
        raise StripeError(
            402,
            "We are unable to authenticate your payment method. Please choose a different "
            "payment method and try again.",
            type="card_error",
            code="payment_intent_authentication_failure",
        )
    note = emu.store.note(session_id)
    email = email or session["customer_email"]
    cus = emu.store.get(session["customer"]) if session["customer"] else None
    receipt = bool((session["invoice_creation"] or {}).get("enabled"))
    if cus is None and (
        session["mode"] == "subscription" or session["customer_creation"] == "always" or receipt
    ):  # an invoice needs a customer
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
        trial_end = sub_data.get("trial_end")
        if sub_data.get("trial_period_days"):
            trial_end = emu.now_for(cus) + int(sub_data["trial_period_days"]) * 86400
        sub, inv = create_subscription(
            emu,
            cus,
            items,
            metadata=sub_data.get("metadata", {}),
            pm_id=pm["id"],
            description=sub_data.get("description"),
            trial_end=trial_end,
            discount=_session_discount(emu, session),
        )
        session.update(subscription=sub["id"], invoice=inv["id"], amount_total=inv["total"])
        session["total_details"]["amount_discount"] = sum(
            d["amount"] for d in inv["total_discount_amounts"] or []
        )
    elif session["amount_total"] == 0:
        pass  # fully discounted: nothing to charge (no_payment_required)
    else:
        pi_data = note.get("payment_intent_data", {})
        pi, _, paid = charge(
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
        if paid and receipt:
            assert cus is not None
            session["invoice"] = post_payment_invoice(emu, session, cus, pi)["id"]
    details = objects.new(
        "checkout.session.customer_details",
        email=(cus or {}).get("email") or email,
        name=(cus or {}).get("name") or name,
        tax_exempt="none",
        tax_ids=[],
    )
    free = session["mode"] == "payment" and session["amount_total"] == 0
    session.update(
        status="complete",
        payment_status="no_payment_required" if free else "paid",
        customer=cus["id"] if cus else None,
        customer_details=details,
        url=None,
    )
    if session["discounts"]:
        redeem(emu, *_chosen(emu, session))
    emu.emit("checkout.session.completed", session)
    return session


def apply_to_session(
    emu: Emulator, session: dict[str, Any], coupon: dict[str, Any], promo: dict[str, Any] | None
) -> None:
    """Discount a session: its total (payment mode) now; a subscription's invoices later."""
    session["discounts"] = [
        {
            "coupon": coupon["id"] if promo is None else None,
            "promotion_code": promo["id"] if promo else None,
        }
    ]
    if session["mode"] != "payment":
        return
    off = amount_off(coupon, session["amount_subtotal"])
    discount = objects.new(
        "discount",
        id=emu.new_id("di_"),
        start=session["created"],
        customer=session["customer"],
        checkout_session=session["id"],
        promotion_code=promo["id"] if promo else None,
    )
    discount["source"]["coupon"] = coupon["id"]
    emu.store.add(discount)
    session["amount_total"] = session["amount_subtotal"] - off
    session["total_details"]["amount_discount"] = off
    session["total_details"]["breakdown"] = {
        "discounts": [{"amount": off, "discount": discount}],
        "taxes": [],
    }


def _chosen(emu: Emulator, session: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    entry = session["discounts"][0]
    promo = emu.get("promotion_code", entry["promotion_code"]) if entry["promotion_code"] else None
    coupon_id = promo["promotion"]["coupon"] if promo else entry["coupon"]
    return emu.get("coupon", coupon_id), promo


def _session_discount(
    emu: Emulator, session: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None, str] | None:
    if not session["discounts"]:
        return None
    coupon, promo = _chosen(emu, session)
    return coupon, promo, session["id"]


# --- ACH Direct Debit (a delayed-notification method) -----------------------------------
# Stripe's test account numbers (routing 110000000): 000123456789 succeeds, the others fail.
BANK_FAILURES = {
    "000111111113": "account_closed",
    "000111111116": "no_account",
    "000222222227": "insufficient_funds",
    "000333333335": "debit_not_authorized",
    "000444444440": "invalid_currency",
}
BANK_SUCCESS = "000123456789"
# ACH debits settle in about four business days; the clock has to get there.
ASYNC_SETTLE_SECONDS = 4 * 86400


def _complete_with_bank_debit(
    emu: Emulator,
    session: dict[str, Any],
    account_number: str,
    *,
    email: str | None,
    name: str | None,
) -> dict[str, Any]:
    number = normalise_card(account_number)
    if session["mode"] != "payment":
        raise invalid(
            "payment_method",
            "The emulator takes bank debits in payment mode only (subscriptions: cards).",
        )
    if "us_bank_account" not in session["payment_method_types"]:
        raise invalid("payment_method", "This Checkout Session does not accept us_bank_account.")
    if len(number) < 4:
        raise invalid("account_number", "The account number is incomplete.")
    cus = emu.store.get(session["customer"]) if session["customer"] else None
    email = email or session["customer_email"]
    if cus is None and session["customer_creation"] == "always":
        cus = create_customer_record(
            emu, email=email or "customer@example.invalid", name=name, metadata={}
        )
    at = emu.now_for(cus)
    bank = objects.new(
        "payment_method.us_bank_account",
        account_holder_type="individual",
        account_type="checking",
        bank_name="STRIPE TEST BANK",
        fingerprint="fpba" + number[-8:],
        last4=number[-4:],
        routing_number="110000000",
        networks={"preferred": "ach", "supported": ["ach"]},
    )
    pm = objects.new(
        "payment_method",
        id=emu.new_id("pm_"),
        created=at,
        type="us_bank_account",
        us_bank_account=bank,
        customer=cus["id"] if cus else None,
        metadata={},
        allow_redisplay="unspecified",
    )
    pm["billing_details"]["name"] = name or "Jenny Rosen"
    emu.store.add(pm)
    emu.store.note(pm["id"])["bank_account"] = number
    if cus is not None:
        emu.emit("payment_method.attached", pm)
    pi_data = emu.store.note(session["id"]).get("payment_intent_data", {})
    pi = objects.payment_intent(
        emu.new_id("pi_"),
        at,
        amount=session["amount_total"],
        currency=session["currency"],
        customer=cus["id"] if cus else None,
        description=pi_data.get("description"),
        metadata=dict(pi_data.get("metadata", {})),
        payment_method=pm["id"],
    )
    pi.update(payment_method_types=["us_bank_account"], status="processing")
    emu.store.add(pi)
    emu.emit("payment_intent.created", pi)
    emu.emit("payment_intent.processing", pi)
    ch = objects.charge(
        emu.new_id("ch_"), at, pi=pi, pm=None, ok=True,
        calculated_statement_descriptor=emu.statement_descriptor,
    )  # fmt: skip
    pmd = objects.new("charge.payment_method_details", type="us_bank_account")
    pmd["us_bank_account"] = objects.new(
        "charge.payment_method_details.us_bank_account",
        account_holder_type="individual",
        account_type="checking",
        bank_name="STRIPE TEST BANK",
        fingerprint=bank["fingerprint"],
        last4=bank["last4"],
        routing_number="110000000",
        expected_debit_date=None,
    )
    ch.update(
        status="pending",
        paid=False,
        payment_method=pm["id"],
        payment_method_details=pmd,
    )
    ch["outcome"].update(seller_message="Payment pending.", network_status="approved_by_network")
    emu.store.add(ch)
    pi["latest_charge"] = ch["id"]
    emu.emit("charge.pending", ch)
    details = objects.new(
        "checkout.session.customer_details",
        email=(cus or {}).get("email") or email,
        name=(cus or {}).get("name") or name,
        tax_exempt="none",
        tax_ids=[],
    )
    session.update(
        status="complete",
        payment_status="unpaid",
        payment_intent=pi["id"],
        customer=cus["id"] if cus else None,
        customer_details=details,
        url=None,
    )
    emu.emit("checkout.session.completed", session)
    emu.schedule("bank_debit_settle", pi["id"], at + ASYNC_SETTLE_SECONDS, owner=pi)
    return session


@task("bank_debit_settle")
def settle_bank_debit(emu: Emulator, pi_id: str) -> None:
    """The bank's answer: the payment succeeds, or fails with the test number's reason."""
    pi = emu.get("payment_intent", pi_id)
    ch = emu.get("charge", pi["latest_charge"])
    number = emu.store.note(pi["payment_method"]).get("bank_account", "")
    failure = BANK_FAILURES.get(number)
    at = emu.now_for(pi)
    sessions = [s for s in emu.store.all("checkout.session") if s["payment_intent"] == pi_id]
    if failure is None:
        txn = objects.balance_transaction(
            emu.new_id("txn_"), at, amount=pi["amount"], currency=pi["currency"],
            source=ch["id"], kind="charge",
        )  # fmt: skip
        emu.store.add(txn)
        ch.update(status="succeeded", paid=True, balance_transaction=txn["id"])
        ch["outcome"]["seller_message"] = "Payment complete."
        emu.emit("charge.succeeded", ch)
        pi.update(status="succeeded", amount_received=pi["amount"])
        emu.emit("payment_intent.succeeded", pi)
        for session in sessions:
            session["payment_status"] = "paid"
            emu.emit("checkout.session.async_payment_succeeded", session)
        return
    ch.update(
        status="failed",
        captured=False,
        amount_captured=0,
        failure_code=failure,
        failure_message=f"The bank returned the debit ({failure}).",
    )
    ch["outcome"].update(
        type="issuer_declined", network_status="declined_by_network", reason=failure,
        seller_message="The bank returned the debit.",
    )  # fmt: skip
    emu.emit("charge.failed", ch)
    error = objects.new(
        "payment_intent.last_payment_error",
        type="invalid_request_error",
        code="payment_method_unactivated" if failure == "debit_not_authorized" else failure,
        message=ch["failure_message"],
        charge=ch["id"],
        payment_method_type="us_bank_account",
    )
    pi.update(status="requires_payment_method", last_payment_error=error)
    emu.emit("payment_intent.payment_failed", pi)
    for session in sessions:
        emu.emit("checkout.session.async_payment_failed", session)
