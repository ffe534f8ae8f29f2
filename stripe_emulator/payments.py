"""PaymentIntents created and confirmed through the API (``POST /v1/payment_intents``,
``/confirm``): one-off charges of a saved card, on-session or off-session (``off_session=true``,
the customer is not there to authenticate).

The test cards decide as in Stripe: 4242 succeeds; 0002 and 0341 are declined (402
``card_declined``, the PaymentIntent back to ``requires_payment_method``); 3184 (and 3155
on-session) needs 3-D Secure: on-session the PaymentIntent waits in ``requires_action``,
off-session the request fails with ``authentication_required``. Every 402 carries the
PaymentIntent, as ``CardError.error.payment_intent``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import objects
from .api import TEST_PM_TOKENS, create_payment_method
from .billing import attempt_payment
from .core import Request, Routes
from .errors import StripeError, card_declined, invalid, missing
from .params import merge_metadata
from .sca import ON_SESSION, needs_authentication

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
ID = r"(?P<oid>[^/]+)"
# Stripe's minimum charge amounts (in the currency's smallest unit) for the usual currencies.
MINIMUM_AMOUNTS = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50}
CONFIRM_SPEC: dict[str, Any] = {
    "payment_method": "str",
    "off_session": "str",
    "error_on_requires_action": "bool",
}
CREATE_SPEC: dict[str, Any] = {
    **CONFIRM_SPEC,
    "amount": "int",
    "currency": "str",
    "customer": "str",
    "confirm": "bool",
    "description": "str",
    "metadata": "meta",
    "receipt_email": "str",
    "statement_descriptor_suffix": "str",
    "payment_method_types": "strs",
    "setup_future_usage": "str",
}


def _off_session(value: str | None) -> bool:
    """``off_session`` is a boolean or ``one_off``/``recurring`` (both off-session)."""
    if value in (None, "false"):
        return False
    if value in ("true", "one_off", "recurring"):
        return True
    raise invalid("off_session", f"Invalid off_session: {value}", "parameter_invalid_boolean")


def _payment_method(emu: Emulator, pm_id: str, customer: str | None) -> str:
    """The payment method to charge: a saved one of ``customer``, or a test token."""
    if pm_id in TEST_PM_TOKENS:  # Stripe accepts its test tokens directly
        return str(create_payment_method(emu, TEST_PM_TOKENS[pm_id])["id"])
    pm = emu.get("payment_method", pm_id, "payment_method")
    if pm["customer"] and pm["customer"] != customer:
        raise invalid(
            "payment_method",
            f"The provided PaymentMethod {pm_id} belongs to another customer or the "
            "customer parameter is missing; pass the customer the PaymentMethod is attached to.",
            "payment_method_unexpected_state",
        )
    return str(pm["id"])


@routes("POST", "/v1/payment_intents")
def create_payment_intent(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(CREATE_SPEC)
    for name in ("amount", "currency"):
        if name not in p:
            raise missing(name)
    currency = p["currency"].lower()
    minimum = MINIMUM_AMOUNTS.get(currency, 1)
    if p["amount"] < minimum:
        raise invalid(
            "amount",
            f"Amount must be at least {minimum} in the smallest {currency} unit.",
            "amount_too_small",
        )
    if p.get("setup_future_usage") not in (None, "on_session", "off_session"):
        raise invalid(
            "setup_future_usage", f"Invalid setup_future_usage: {p['setup_future_usage']}"
        )
    off_session = _off_session(p.get("off_session"))
    if off_session and not p.get("confirm"):
        raise invalid("off_session", "off_session can only be used when confirm=true.")
    cus = emu.get("customer", p["customer"], "customer") if "customer" in p else None
    pm_id = (
        _payment_method(emu, p["payment_method"], p.get("customer"))
        if "payment_method" in p
        else None
    )
    unknown = set(p.get("payment_method_types") or ["card"]) - {"card"}
    if unknown:
        raise invalid(
            "payment_method_types", f"The emulator's PaymentIntents take cards only, not {unknown}."
        )
    pi = objects.payment_intent(
        emu.new_id("pi_"),
        emu.now_for(cus),
        amount=p["amount"],
        currency=currency,
        customer=cus["id"] if cus else None,
        description=p.get("description"),
        metadata=merge_metadata({}, p.get("metadata")),
        payment_method=pm_id,
        receipt_email=p.get("receipt_email"),
        setup_future_usage=p.get("setup_future_usage"),
        statement_descriptor_suffix=p.get("statement_descriptor_suffix"),
        status="requires_confirmation" if pm_id else "requires_payment_method",
    )
    emu.store.add(pi)
    emu.emit("payment_intent.created", pi)
    if p.get("confirm"):
        confirm(emu, pi, off_session, p.get("error_on_requires_action", False))
    return pi


@routes("POST", f"/v1/payment_intents/{ID}/confirm")
def confirm_payment_intent(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse(CONFIRM_SPEC)
    pi = emu.get("payment_intent", oid)
    if pi["status"] not in ("requires_payment_method", "requires_confirmation"):
        raise invalid(
            "intent",
            f"This PaymentIntent's status is {pi['status']}; it cannot be confirmed.",
            "payment_intent_unexpected_state",
        )
    if "payment_method" in p:
        pi["payment_method"] = _payment_method(emu, p["payment_method"], pi["customer"])
    confirm(emu, pi, _off_session(p.get("off_session")), p.get("error_on_requires_action", False))
    return pi


def confirm(emu: Emulator, pi: dict[str, Any], off_session: bool, error_on_action: bool) -> None:
    """Charge the PaymentIntent's payment method; a decline raises Stripe's 402."""
    if not pi["payment_method"]:
        raise StripeError(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "Update the PaymentIntent with a payment method and then confirm it again.",
            code="payment_intent_unexpected_state",
            param="payment_method",
        )
    purpose = "off_session" if off_session else ON_SESSION
    if needs_authentication(emu, pi["payment_method"], purpose) and (
        off_session or error_on_action
    ):
        # Nobody can answer a 3-D Secure challenge: Stripe declines instead of waiting.
        error = objects.new(
            "payment_intent.last_payment_error",
            type="card_error",
            code="authentication_required",
            decline_code="authentication_required",
            message="Your card was declined. This transaction requires authentication.",
            doc_url="https://stripe.com/docs/error-codes/authentication-required",
            payment_method_type="card",
        )
        error["payment_method"] = emu.lookup(pi["payment_method"])
        pi.update(status="requires_payment_method", last_payment_error=error, next_action=None)
        emu.emit("payment_intent.payment_failed", pi)
        raise card_declined(
            "authentication_required",
            payment_intent=copy.deepcopy(pi),
            code="authentication_required",
            message=error["message"],
        )
    charge, ok = attempt_payment(emu, pi, purpose)
    if charge is not None and not ok:
        raise card_declined(charge=charge["id"], payment_intent=copy.deepcopy(pi))
