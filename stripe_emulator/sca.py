"""Strong Customer Authentication: Stripe's 3-D Secure test cards and the confirmation page.

- 4000 0025 0000 3155 needs authentication on-session (the Checkout page asks for it); once set
  up by Checkout, later off-session charges (renewals) go through without it;
- 4000 0027 6000 3184 needs authentication every time: a renewal or retry leaves its
  PaymentIntent ``requires_action`` (``next_action.redirect_to_url`` -> ``/authenticate/{pi}``),
  emits ``payment_intent.requires_action`` and ``invoice.payment_action_required``, and the
  subscription goes past_due until the customer confirms (or a later attempt is confirmed);
- on the confirmation page (or ``POST /_emulator/payment_intents/{pi}/authenticate``) the
  customer completes (the charge succeeds, the invoice is paid) or fails it
  (``payment_intent_authentication_failure``: ``payment_intent.payment_failed``,
  ``invoice.payment_failed``).
"""

from __future__ import annotations

import copy
from html import escape
from typing import TYPE_CHECKING, Any

from . import objects
from .core import Request, Response, Routes
from .errors import StripeError, invalid

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
AUTH_ON_SESSION = "4000002500003155"
AUTH_ALWAYS = "4000002760003184"
SCA_CARDS = (AUTH_ON_SESSION, AUTH_ALWAYS)
OFF_SESSION = ("renewal", "retry", "update", "manual", "off_session")
ON_SESSION = "on_session"  # a PaymentIntent confirmed through the API with the customer present


def needs_authentication(emu: Emulator, pm_id: str | None, purpose: str) -> bool:
    """Whether a charge must wait for the customer (Checkout authenticates on its page): 3155
    on-session only (it was set up for later off-session use), 3184 every time."""
    number = emu.store.notes.get(pm_id or "", {}).get("card")
    if purpose == ON_SESSION:
        return number in SCA_CARDS
    return number == AUTH_ALWAYS and purpose in OFF_SESSION


def require_action(emu: Emulator, pi: dict[str, Any]) -> None:
    action = objects.new("payment_intent.next_action", type="redirect_to_url")
    action["redirect_to_url"] = {
        "return_url": None,
        "url": f"{emu.base_url}/authenticate/{pi['id']}",
    }
    pi.update(status="requires_action", next_action=action)
    emu.emit("payment_intent.requires_action", pi)


def authenticate(emu: Emulator, pi_id: str, outcome: str) -> dict[str, Any]:
    """The customer completes (``complete``) or fails (``fail``) 3-D Secure for ``pi_id``."""
    from .billing import _diff, invoice_paid, settle_payment

    if outcome not in ("complete", "fail"):
        raise invalid("outcome", "outcome must be 'complete' or 'fail'")
    pi = emu.get("payment_intent", pi_id)
    if pi["status"] != "requires_action":
        raise invalid(
            "payment_intent",
            f"This PaymentIntent's status is {pi['status']}; it needs no authentication.",
            "payment_intent_unexpected_state",
        )
    payments = [
        p for p in emu.store.all("invoice_payment") if p["payment"]["payment_intent"] == pi_id
    ]
    inv = emu.store.get(payments[0]["invoice"], "invoice") if payments else None
    before = copy.deepcopy(inv) if inv else {}
    if outcome == "complete":
        settle_payment(emu, pi, True)
        if inv is not None and inv["status"] == "open":
            invoice_paid(emu, inv, payments[0], before)
        return pi
    error = objects.new(
        "payment_intent.last_payment_error",
        type="invalid_request_error",
        code="payment_intent_authentication_failure",
        message="The provided PaymentMethod has failed authentication.",
        payment_method_type="card",
        doc_url="https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
    )
    pi.update(status="requires_payment_method", next_action=None, last_payment_error=error)
    emu.emit("payment_intent.payment_failed", pi)
    if inv is not None and inv["status"] == "open":
        payments[0]["status"] = "failed"
        emu.emit("invoice.payment_failed", inv)
        emu.emit("invoice.updated", inv, _diff(before, inv) or {"attempted": True})
    return pi


@routes("GET", r"/authenticate/(?P<oid>pi_[^/]+)")
def authentication_page(emu: Emulator, req: Request, oid: str) -> Response:
    from .pages import money, page

    with emu.lock:
        pi = emu.get("payment_intent", oid)
        if pi["status"] != "requires_action":
            return page(
                "3-D Secure", f"<h1>3-D Secure</h1><p>Nothing to confirm ({pi['status']}).</p>"
            )
        body = f"""
<h1>3-D Secure test payment</h1>
<p>Confirm a payment of {money(pi["amount"], pi["currency"])} to {escape(emu.account_name)}.</p>
<form method="post" action="/authenticate/{escape(oid)}">
<button name="outcome" value="complete" type="submit">Complete authentication</button>
<button name="outcome" value="fail" type="submit" class="secondary">Fail authentication</button>
</form>"""
        return page("3-D Secure", body)


@routes("POST", r"/authenticate/(?P<oid>pi_[^/]+)")
def authentication_submit(emu: Emulator, req: Request, oid: str) -> Response:
    from .pages import form_value, page

    try:
        with emu.transaction():
            pi = authenticate(emu, oid, form_value(req, "outcome") or "complete")
            status = pi["status"]
    except StripeError as err:
        return page("3-D Secure", f"<h1>3-D Secure</h1><p>{escape(err.message)}</p>", err.status)
    done = "Payment confirmed." if status == "succeeded" else "Authentication failed."
    return page("3-D Secure", f"<h1>3-D Secure</h1><p>{done}</p>")


@routes("POST", r"/_emulator/payment_intents/(?P<oid>pi_[^/]+)/authenticate")
def authenticate_admin(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({"outcome": "str"})
    with emu.transaction():
        return copy.deepcopy(authenticate(emu, oid, p.get("outcome", "complete")))
