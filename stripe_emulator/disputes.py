"""Disputes: Stripe's dispute test cards, the life cycle, evidence and the money moves.

Life cycle (Stripe's docs, "Disputes" and "Testing: disputes"):

- a chargeback is created ``needs_response`` and its funds are withdrawn at once:
  ``charge.dispute.created`` then ``charge.dispute.funds_withdrawn`` (a balance transaction of
  ``-amount`` plus the dispute fee on ``dispute.balance_transactions``);
- an inquiry is created ``warning_needs_response`` and moves no money: only
  ``charge.dispute.created``;
- evidence (``POST /v1/disputes/{id}`` with ``submit``) moves it to ``under_review`` (or
  ``warning_under_review``), ``charge.dispute.updated``; in test mode the text
  ``winning_evidence`` / ``losing_evidence`` decides the outcome at once;
- a won chargeback is closed ``won`` and its funds come back: ``charge.dispute.closed`` and
  ``charge.dispute.funds_reinstated`` (a second, positive balance transaction); a lost one is
  closed ``lost`` (``charge.dispute.closed``); ``POST /v1/disputes/{id}/close`` accepts it (lost);
- an inquiry closes ``warning_closed`` (nothing moves); a losing inquiry escalates to a
  chargeback (``charge.dispute.updated`` to ``needs_response``, then ``funds_withdrawn``).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import objects
from .api import created_filter, filtered
from .core import Request, Routes
from .errors import invalid
from .listing import LIST_SPEC, paginate
from .params import merge_metadata

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
ID = r"(?P<oid>dp_[^/]+)"
DAY = 86400
DISPUTE_FEE = 1500  # cents, Stripe's US dispute fee

# Stripe's dispute test cards -> (reason, inquiry)
DISPUTE_CARDS = {
    "4000000000000259": ("fraudulent", False),
    "4000000000002685": ("product_not_received", False),
    "4000000000001976": ("general", True),
}
REASONS = (
    "bank_cannot_process",
    "check_returned",
    "credit_not_processed",
    "customer_initiated",
    "debit_not_authorized",
    "duplicate",
    "fraudulent",
    "general",
    "incorrect_account_details",
    "insufficient_funds",
    "noncompliant",
    "product_not_received",
    "product_unacceptable",
    "subscription_canceled",
    "unrecognized",
)
OPEN = ("needs_response", "under_review", "warning_needs_response", "warning_under_review")


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(before.get(k)) for k in after if before.get(k) != after[k]}


def open_dispute(
    emu: Emulator, charge: dict[str, Any], reason: str, *, inquiry: bool = False
) -> dict[str, Any]:
    """A cardholder disputes ``charge``: the dispute, its events and (chargebacks) the money."""
    if charge["status"] != "succeeded":
        raise invalid("charge", f"Charge {charge['id']} did not succeed; it cannot be disputed.")
    if any(d["charge"] == charge["id"] for d in emu.store.all("dispute")):
        raise invalid("charge", f"Charge {charge['id']} has already been disputed.")
    if reason not in REASONS:
        raise invalid("reason", f"Invalid reason: {reason}")
    at = emu.now_for(charge)
    did = emu.new_id("dp_")
    dispute = objects.new(
        "dispute",
        id=did,
        created=at,
        amount=charge["amount"],
        currency=charge["currency"],
        charge=charge["id"],
        payment_intent=charge["payment_intent"],
        reason=reason,
        status="warning_needs_response" if inquiry else "needs_response",
        is_charge_refundable=inquiry,
        metadata={},
        balance_transactions=[],
        enhanced_eligibility_types=[],
    )
    dispute["evidence"] = objects.new("dispute.evidence")
    details = objects.new("dispute.evidence_details", due_by=at + 7 * DAY)
    dispute["evidence_details"] = details
    emu.store.add(dispute)
    charge["disputed"] = True
    emu.emit("charge.dispute.created", dispute)
    if not inquiry:
        _withdraw(emu, dispute)
    return dispute


def _money(emu: Emulator, dispute: dict[str, Any], amount: int, fee: int, description: str) -> None:
    at = emu.now_for(emu.store.get(dispute["charge"]) or {})
    txn = objects.balance_transaction(
        emu.new_id("txn_"),
        at,
        amount=amount,
        currency=dispute["currency"],
        source=dispute["id"],
        kind="adjustment",
    )
    txn.update(
        reporting_category="dispute" if amount < 0 else "dispute_reversal",
        fee=fee,
        net=amount - fee,
        description=description,
        fee_details=[
            {
                "amount": fee,
                "application": None,
                "currency": dispute["currency"],
                "description": "Dispute fee",
                "type": "stripe_fee",
            }
        ]
        if fee
        else [],
    )
    emu.store.add(txn)
    dispute["balance_transactions"].append(copy.deepcopy(txn))


def _withdraw(emu: Emulator, dispute: dict[str, Any]) -> None:
    _money(
        emu,
        dispute,
        -dispute["amount"],
        DISPUTE_FEE,
        f"Chargeback withdrawal for {dispute['charge']}",
    )
    emu.emit("charge.dispute.funds_withdrawn", dispute)


def close_dispute(emu: Emulator, dispute: dict[str, Any], outcome: str) -> dict[str, Any]:
    """Decide an open dispute: ``won`` or ``lost`` (an inquiry: closed, or escalated if lost)."""
    if outcome not in ("won", "lost"):
        raise invalid("outcome", "outcome must be 'won' or 'lost'")
    if dispute["status"] not in OPEN:
        raise invalid("dispute", f"This dispute is already closed ({dispute['status']}).")
    before = copy.deepcopy(dispute)
    if dispute["status"].startswith("warning_"):
        if outcome == "won":
            dispute["status"] = "warning_closed"
            emu.emit("charge.dispute.closed", dispute, _diff(before, dispute))
            return dispute
        # the issuer turns the inquiry into a chargeback
        dispute.update(status="needs_response", is_charge_refundable=False)
        emu.emit("charge.dispute.updated", dispute, _diff(before, dispute))
        _withdraw(emu, dispute)
        return dispute
    dispute["status"] = outcome
    emu.emit("charge.dispute.closed", dispute, _diff(before, dispute))
    if outcome == "won":
        _money(emu, dispute, dispute["amount"], 0, f"Chargeback reversal for {dispute['charge']}")
        emu.emit("charge.dispute.funds_reinstated", dispute)
    return dispute


EVIDENCE_SPEC = {
    key: "str" for key in objects.new("dispute.evidence") if key != "enhanced_evidence"
}


@routes("GET", f"/v1/disputes/{ID}")
def get_dispute(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("dispute", oid)


@routes("GET", "/v1/disputes")
def list_disputes(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "charge": "str", "payment_intent": "str", "created": "range"})
    items = filtered(
        emu.store.all("dispute"), charge=p.get("charge"), payment_intent=p.get("payment_intent")
    )
    return paginate(created_filter(items, p.get("created")), p, "/v1/disputes")


@routes("POST", f"/v1/disputes/{ID}")
def update_dispute(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    """Save evidence; ``submit`` (default true) sends it. Test mode: the text decides."""
    p = req.parse({"evidence": EVIDENCE_SPEC, "metadata": "meta", "submit": "bool"})
    dispute = emu.get("dispute", oid)
    if dispute["status"] not in OPEN:
        raise invalid("dispute", f"This dispute is already closed ({dispute['status']}).")
    before = copy.deepcopy(dispute)
    if "metadata" in p:
        dispute["metadata"] = merge_metadata(dispute["metadata"], p["metadata"])
    evidence = p.get("evidence", {})
    for key, value in evidence.items():
        dispute["evidence"][key] = value or None
    details = dispute["evidence_details"]
    if evidence:
        details["has_evidence"] = True
    submit = p.get("submit", True)
    if submit and evidence:
        details["submission_count"] += 1
        dispute["status"] = (
            "warning_under_review" if dispute["status"].startswith("warning_") else "under_review"
        )
    previous = _diff(before, dispute)
    if previous:
        emu.emit("charge.dispute.updated", dispute, previous)
    text = dispute["evidence"].get("uncategorized_text") or ""
    if submit and "winning_evidence" in text:
        close_dispute(emu, dispute, "won")
    elif submit and "losing_evidence" in text:
        close_dispute(emu, dispute, "lost")
    return dispute


@routes("POST", f"/v1/disputes/{ID}/close")
def accept_dispute(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    """Accept the dispute: a chargeback is lost, an inquiry closes."""
    req.parse({})
    dispute = emu.get("dispute", oid)
    if dispute["status"] not in OPEN:
        raise invalid("dispute", f"This dispute is already closed ({dispute['status']}).")
    before = copy.deepcopy(dispute)
    dispute["status"] = "warning_closed" if dispute["status"].startswith("warning_") else "lost"
    emu.emit("charge.dispute.closed", dispute, _diff(before, dispute))
    return dispute
