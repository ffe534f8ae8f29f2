"""Invoice previews (``POST /v1/invoices/create_preview``) for an existing subscription.

A preview is the real thing done on a copy and forgotten (``Emulator.dry_run``): the proposed
``subscription_details`` go through ``update_subscription``, so the prorations are the ones an
update with the same ``proration_date`` makes. What comes back is

- the invoice the update bills at once (``always_invoice``, or a new billing interval), or
- otherwise the next renewal invoice: the next period at the new prices, plus pending
  invoice items and the update's prorations (``create_prorations``). With no
  ``subscription_details`` it is the upcoming invoice: what the customer pays next, and when
  (``next_payment_attempt``).

The preview's id starts with ``upcoming_``; it is in no list and cannot be paid, as in Stripe.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .billing import at_time, renew, update_subscription
from .core import Request, Routes
from .errors import StripeError, invalid

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
PREVIEW_SPEC: dict[str, Any] = {
    "customer": "str",
    "subscription": "str",
    "subscription_details": {
        "items": [{"id": "str", "price": "str", "quantity": "int", "deleted": "bool"}],
        "proration_behavior": "str",
        "proration_date": "int",
        "cancel_at_period_end": "bool",
        "cancel_at": "str",
    },
}


def no_upcoming(customer: str) -> StripeError:
    return StripeError(
        400,
        f"No upcoming invoices for customer: {customer}",
        code="invoice_upcoming_none",
    )


@routes("POST", "/v1/invoices/create_preview")
def create_preview(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(PREVIEW_SPEC)
    if "subscription" not in p:
        raise invalid(
            "subscription",
            "The emulator previews the invoices of an existing subscription: pass subscription.",
        )
    sub = emu.get("subscription", p["subscription"], "subscription")
    if p.get("customer", sub["customer"]) != sub["customer"]:
        raise invalid("customer", f"The subscription {sub['id']} belongs to another customer.")
    with emu.dry_run():
        preview = _preview(emu, sub["id"], p.get("subscription_details", {}))
    pid = f"upcoming_{preview['id']}"
    preview["id"] = pid
    preview["lines"]["url"] = f"/v1/invoices/{pid}/lines"
    for line in preview["lines"]["data"]:
        line["invoice"] = pid
    return preview


def _preview(emu: Emulator, sub_id: str, details: dict[str, Any]) -> dict[str, Any]:
    """Inside a dry run: apply ``details`` and return the invoice Stripe would make."""
    sub = emu.get("subscription", sub_id)
    latest = sub["latest_invoice"]
    if details:
        update_subscription(emu, sub, dict(details), collect=False)
        if sub["latest_invoice"] != latest:  # billed now: always_invoice or a new interval
            return copy.deepcopy(emu.get("invoice", sub["latest_invoice"]))
    end = min(item["current_period_end"] for item in sub["items"]["data"])
    if sub["status"] not in ("active", "past_due", "trialing") or (
        sub["cancel_at"] and sub["cancel_at"] <= end
    ):
        raise no_upcoming(sub["customer"])
    clock = emu.store.get(sub["test_clock"]) if sub["test_clock"] else None
    with at_time(emu, clock, end):
        renew(emu, sub)
    if sub["latest_invoice"] in (latest, None) or sub["status"] == "canceled":
        raise no_upcoming(sub["customer"])  # a schedule ends the subscription instead
    upcoming = copy.deepcopy(emu.get("invoice", sub["latest_invoice"]))
    # Finalized and charged an hour after it is made (automatically_finalizes_at).
    upcoming["next_payment_attempt"] = upcoming["automatically_finalizes_at"]
    return upcoming
