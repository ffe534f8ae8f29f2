"""Subscriptions, invoices, payments and test clocks: the billing state machines.

- subscription ``incomplete -> active -> past_due -> canceled | unpaid``, ``cancel_at_period_end``
- invoice ``draft -> open -> paid | void | uncollectible``
- payment_intent ``requires_payment_method -> succeeded`` (or back to requires_payment_method)
- renewals, payment retries and scheduled cancellations run when a clock moves (``run_due``).
"""

from __future__ import annotations

import calendar
import copy
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import objects
from .api import filtered
from .core import TASKS, Request, Routes, task
from .disputes import DISPUTE_CARDS, open_dispute
from .errors import StripeError, card_declined, invalid, missing
from .listing import LIST_SPEC, paginate
from .params import merge_metadata
from .sca import needs_authentication, require_action
from .tax_ids import invoice_tax_ids

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
ID = r"(?P<oid>[^/]+)"
DAY = 86400
# The dashboard's custom retry schedule (Billing > Revenue recovery > Retries): days after the
# previous attempt, up to 3 retries (Stripe's Smart Retries pick their own times, up to 8 tries
# in a chosen window: give those days here). Then, per the settings, the subscription is
# canceled, marked unpaid or left past_due, and the invoice left open, marked uncollectible or
# voided. ``Emulator(dunning=...)`` or ``POST /_emulator/dunning`` changes them.
DEFAULT_DUNNING = {"retry_days": [3, 5, 7], "subscription": "cancel", "invoice": "open"}
DUNNING_CHOICES = {
    "subscription": ("cancel", "unpaid", "past_due"),
    "invoice": ("open", "uncollectible", "void"),
}
DECLINE_CARD = "4000000000000002"
FAIL_LATER_CARD = "4000000000000341"


# --- time helpers -----------------------------------------------------------------------
def add_interval(ts: int, interval: str, count: int = 1) -> int:
    """``ts`` moved by ``count`` intervals (calendar months/years clamp to the month's end)."""
    if interval == "day":
        return ts + count * DAY
    if interval == "week":
        return ts + count * 7 * DAY
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    months = count * (12 if interval == "year" else 1)
    month_index = when.month - 1 + months
    year, month = when.year + month_index // 12, month_index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return int(when.replace(year=year, month=month, day=day).timestamp())


def fmt_date(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%d %b %Y")


# --- payments ---------------------------------------------------------------------------
def card_number(emu: Emulator, pm_id: str | None) -> str | None:
    return emu.store.notes.get(pm_id or "", {}).get("card")


def card_succeeds(emu: Emulator, pm_id: str | None, purpose: str, customer_id: str | None) -> bool:
    """Stripe's test cards: 0002 always declines; 0341 attaches and pays at checkout, then fails."""
    if purpose in ("renewal", "retry") and customer_id:
        override = emu.store.fail_next_renewal.pop(customer_id, None)
        if override in ("fail", "succeed"):
            return override == "succeed"
    number = card_number(emu, pm_id)
    if number is None:
        return False
    if number == DECLINE_CARD:
        return False
    if number == FAIL_LATER_CARD:
        return purpose == "checkout"
    return True


def charge(
    emu: Emulator,
    *,
    customer: str | None,
    amount: int,
    currency: str,
    pm_id: str | None,
    description: str | None,
    metadata: dict[str, str] | None = None,
    purpose: str = "one_off",
) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
    """Create a PaymentIntent and try to charge it; emits the payment events."""
    at = emu.now_for(customer)
    pi = objects.payment_intent(
        emu.new_id("pi_"),
        at,
        amount=amount,
        currency=currency,
        customer=customer,
        description=description,
        metadata=dict(metadata or {}),
        payment_method=pm_id,
        setup_future_usage="off_session" if purpose == "checkout" and customer else None,
    )
    emu.store.add(pi)
    emu.emit("payment_intent.created", pi)
    ch, ok = attempt_payment(emu, pi, purpose)
    return pi, ch, ok


def attempt_payment(
    emu: Emulator, pi: dict[str, Any], purpose: str
) -> tuple[dict[str, Any] | None, bool]:
    """Confirm a PaymentIntent with its payment method: 3-D Secure first if the card asks for
    it (``requires_action``, no charge yet), else the charge succeeds or is declined."""
    if needs_authentication(emu, pi["payment_method"], purpose):
        require_action(emu, pi)  # the customer must confirm (3-D Secure) first
        return None, False
    ok = card_succeeds(emu, pi["payment_method"], purpose, pi["customer"])
    return settle_payment(emu, pi, ok), ok


def settle_payment(emu: Emulator, pi: dict[str, Any], ok: bool) -> dict[str, Any]:
    """The charge for a PaymentIntent: succeeded or declined, with its events."""
    at = emu.now_for(pi["customer"])
    amount, currency, pm_id = pi["amount"], pi["currency"], pi["payment_method"]
    pm = emu.store.get(pm_id) if pm_id else None
    ch = objects.charge(
        emu.new_id("ch_"), at, pi=pi, pm=pm, ok=ok,
        calculated_statement_descriptor=emu.statement_descriptor,
    )  # fmt: skip
    if ok:
        txn = objects.balance_transaction(
            emu.new_id("txn_"), at, amount=amount, currency=currency, source=ch["id"], kind="charge"
        )
        emu.store.add(txn)
        ch["balance_transaction"] = txn["id"]
    emu.store.add(ch)
    pi["latest_charge"] = ch["id"]
    if ok:
        emu.emit("charge.succeeded", ch)
        pi.update(status="succeeded", amount_received=amount, next_action=None)
        emu.emit("payment_intent.succeeded", pi)
        disputed = DISPUTE_CARDS.get(card_number(emu, pm_id) or "")
        if disputed:  # Stripe's dispute test cards: the cardholder disputes at once
            open_dispute(emu, ch, disputed[0], inquiry=disputed[1])
    else:
        emu.emit("charge.failed", ch)
        error = objects.new(
            "payment_intent.last_payment_error",
            type="card_error",
            code="card_declined",
            decline_code="generic_decline",
            message="Your card was declined.",
            charge=ch["id"],
            doc_url="https://stripe.com/docs/error-codes/card-declined",
            payment_method_type="card",
        )
        pi.update(status="requires_payment_method", last_payment_error=error, next_action=None)
        emu.emit("payment_intent.payment_failed", pi)
    return ch


# --- invoices ---------------------------------------------------------------------------
def create_invoice(
    emu: Emulator,
    sub: dict[str, Any],
    reason: str,
    *,
    period_start: int,
    period_end: int,
    with_sub_lines: bool = True,
    pending: list[dict[str, Any]] | None = None,
    iid: str | None = None,
    trial: bool = False,
) -> dict[str, Any]:
    """A draft invoice for ``sub`` with its items (new period) and pending invoice items.

    ``trial``: the first invoice of a trial, one free line per item for the trial period.
    """
    cus = emu.get("customer", sub["customer"])
    at = emu.now_for(cus)
    iid = iid or emu.new_id("in_")
    lines = []
    if with_sub_lines:
        for item in sub["items"]["data"]:
            price = item["price"]
            product = emu.store.get(price["product"]) or {"name": price["product"]}
            lines.append(
                objects.invoice_line(
                    emu.new_id("il_"),
                    invoice_id=iid,
                    amount=0 if trial else price["unit_amount"] * item["quantity"],
                    currency=price["currency"],
                    description=f"Trial period for {product['name']}"
                    if trial
                    else f"{item['quantity']} × {product['name']} "
                    f"(at {price['unit_amount'] / 100:.2f} {price['currency'].upper()} "
                    f"/ {price['recurring']['interval']})",
                    price_obj=price,
                    quantity=item["quantity"],
                    start=item["current_period_start"],
                    end=item["current_period_end"],
                    sub_id=sub["id"],
                    si_id=item["id"],
                )
            )
    for ii in pending or []:
        price = emu.store.get(ii["pricing"]["price_details"]["price"]) or {}
        ii["invoice"] = iid
        lines.append(
            objects.invoice_line(
                emu.new_id("il_"),
                invoice_id=iid,
                amount=ii["amount"],
                currency=ii["currency"],
                description=ii["description"],
                price_obj=price,
                quantity=ii["quantity"],
                start=ii["period"]["start"],
                end=ii["period"]["end"],
                sub_id=sub["id"],
                si_id=(ii["parent"] or {}).get("subscription_details", {}).get("subscription_item"),
                invoice_item=ii["id"],
                proration=ii["proration"],
            )
        )
    total = sum(line["amount"] for line in lines)
    due = max(total, 0)
    inv = objects.invoice(
        iid,
        at,
        account_name=emu.display_name,
        customer=cus["id"],
        customer_email=cus["email"],
        customer_tax_ids=invoice_tax_ids(emu, cus["id"]),
        customer_name=cus["name"],
        customer_address=None,
        currency=sub["currency"],
        billing_reason=reason,
        period_start=period_start,
        period_end=period_end,
        parent=objects.invoice_parent_for_subscription(sub) if sub.get("id") else None,
        lines=objects.list_object(f"/v1/invoices/{iid}/lines", lines),
        subtotal=total,
        subtotal_excluding_tax=total,
        total=total,
        total_excluding_tax=total,
        amount_due=due,
        amount_remaining=due,
        ending_balance=None,
        test_clock=cus["test_clock"],
        automatically_finalizes_at=at + 3600 if reason == "subscription_cycle" else None,
        total_discount_amounts=[],
        total_taxes=[],
        total_pretax_credit_amounts=[],
    )
    if sub.get("discounts"):
        from .discounts import invoice_discounts

        invoice_discounts(emu, sub, inv)
    emu.store.add(inv)
    emu.emit("invoice.created", inv)
    return inv


def finalize_invoice(emu: Emulator, inv: dict[str, Any]) -> None:
    cus = emu.get("customer", inv["customer"])
    at = emu.now_for(cus)
    inv["number"] = f"{cus['invoice_prefix']}-{cus['next_invoice_sequence']:04d}"
    inv["customer_tax_ids"] = invoice_tax_ids(emu, cus["id"])  # frozen from now on
    cus["next_invoice_sequence"] += 1
    inv.update(
        status="open",
        effective_at=at,
        ending_balance=0,
        automatically_finalizes_at=None,
        hosted_invoice_url=f"{emu.base_url}/invoices/{inv['id']}",
        invoice_pdf=f"{emu.base_url}/invoices/{inv['id']}/pdf",
    )
    inv["status_transitions"]["finalized_at"] = at
    emu.emit("invoice.finalized", inv)


def pay_invoice(emu: Emulator, inv: dict[str, Any], purpose: str, pm_id: str | None = None) -> bool:
    """Attempt to collect an open invoice; emits payment and invoice events."""
    cus = emu.get("customer", inv["customer"])
    sub_id = inv["parent"]["subscription_details"]["subscription"] if inv["parent"] else None
    sub = emu.store.get(sub_id) if sub_id else None
    at = emu.now_for(cus)
    before = copy.deepcopy(inv)
    if inv["amount_due"] == 0:
        inv.update(status="paid", attempted=True, amount_remaining=0, next_payment_attempt=None)
        inv["status_transitions"]["paid_at"] = at
        emu.emit("invoice.paid", inv)
        emu.emit("invoice.payment_succeeded", inv)
        return True
    pm_id = (
        pm_id
        or (sub or {}).get("default_payment_method")
        or cus["invoice_settings"]["default_payment_method"]
    )
    kind = {"subscription_create": "creation", "subscription_update": "update"}
    pi, _, ok = charge(
        emu,
        customer=cus["id"],
        amount=inv["amount_due"],
        currency=inv["currency"],
        pm_id=pm_id,
        description=f"Subscription {kind.get(inv['billing_reason'], 'cycle')}",
        purpose=purpose,
    )
    inv["attempted"] = True
    inv["attempt_count"] += 1
    payment = objects.invoice_payment(emu.new_id("inpay_"), at, invoice_id=inv["id"], pi=pi)
    emu.store.add(payment)
    if ok:
        invoice_paid(emu, inv, payment, before)
        return True
    attempts = inv["attempt_count"]
    delays = [int(days * DAY) for days in emu.dunning["retry_days"]]
    # A pending update's invoice is not retried: Stripe lets the update expire instead.
    pending = sub is not None and emu.store.note(inv["id"]).get("pending_update_of") == sub["id"]
    inv["next_payment_attempt"] = (
        at + delays[attempts - 1] if sub and attempts <= len(delays) and not pending else None
    )
    if pi["status"] == "requires_action":
        # SCA: the customer must confirm on the hosted invoice page; Stripe keeps retrying.
        payment["status"] = "open"
        emu.emit("invoice.payment_action_required", inv)
    else:
        payment["status"] = "failed"
        emu.emit("invoice.payment_failed", inv)
    emu.emit("invoice.updated", inv, _diff(before, inv))
    if sub and inv["billing_reason"] != "subscription_create" and not pending:
        # A pending update's invoice leaves the subscription as it was: no dunning.
        after_failed_payment(emu, sub, inv)
    return False


def invoice_paid(
    emu: Emulator, inv: dict[str, Any], payment: dict[str, Any], before: dict[str, Any]
) -> None:
    """An invoice's payment succeeded: the invoice and its subscription catch up."""
    at = emu.now_for(inv["customer"])
    inv.update(
        status="paid",
        amount_paid=inv["amount_due"],
        amount_remaining=0,
        next_payment_attempt=None,
    )
    inv["status_transitions"]["paid_at"] = at
    payment.update(status="paid", amount_paid=payment["amount_requested"])
    payment["status_transitions"]["paid_at"] = at
    emu.emit("invoice.updated", inv, _diff(before, inv))
    emu.emit("invoice.paid", inv)
    emu.emit("invoice.payment_succeeded", inv)
    emu.emit("invoice_payment.paid", payment)
    sub_id = _sub_of(inv)
    sub = emu.store.get(sub_id) if sub_id else None
    if sub and emu.store.note(inv["id"]).get("pending_update_of") == sub["id"]:
        apply_pending_update(emu, sub)
    if sub and sub["status"] in ("past_due", "unpaid", "incomplete"):
        set_status(emu, sub, "active")


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(before.get(k)) for k in after if before.get(k) != after[k]}


def after_failed_payment(emu: Emulator, sub: dict[str, Any], inv: dict[str, Any]) -> None:
    if sub["status"] == "active":
        set_status(emu, sub, "past_due")
    if inv["next_payment_attempt"] is None:  # the last retry failed: the dunning settings
        if emu.dunning["invoice"] == "uncollectible" and inv["status"] == "open":
            inv.update(status="uncollectible")
            inv["status_transitions"]["marked_uncollectible_at"] = emu.now_for(inv)
            emu.emit("invoice.marked_uncollectible", inv)
        elif emu.dunning["invoice"] == "void" and inv["status"] == "open":
            inv.update(status="void", amount_remaining=0)
            inv["status_transitions"]["voided_at"] = emu.now_for(inv)
            emu.emit("invoice.voided", inv)
        if emu.dunning["subscription"] == "cancel":
            cancel_now(emu, sub, reason="payment_failed")
        elif emu.dunning["subscription"] == "unpaid":
            set_status(emu, sub, "unpaid")


def set_status(emu: Emulator, sub: dict[str, Any], status: str) -> None:
    before = copy.deepcopy(sub)
    sub["status"] = status
    emu.emit("customer.subscription.updated", sub, _diff(before, sub))


# --- subscriptions ----------------------------------------------------------------------
def create_subscription(
    emu: Emulator,
    cus: dict[str, Any],
    items: list[tuple[dict[str, Any], int]],
    *,
    metadata: dict[str, str],
    pm_id: str | None,
    description: str | None = None,
    trial_end: int | None = None,
    discount: tuple[dict[str, Any], dict[str, Any] | None, str | None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Subscribe ``cus`` and collect the first invoice (used by Checkout).

    With ``trial_end`` the subscription is ``trialing`` until then: its first invoice is a
    free trial line (paid at once), the first period ends with the trial (the billing anchor)
    and ``customer.subscription.trial_will_end`` comes three days before.
    """
    at = emu.now_for(cus)
    sid = emu.new_id("sub_")
    iid = emu.new_id("in_")
    sub_items = []
    for price, quantity in items:
        rec = price["recurring"]
        end = trial_end or add_interval(at, rec["interval"], rec["interval_count"])
        item = objects.subscription_item(
            emu.new_id("si_"), at, sub=sid, price_obj=price, quantity=quantity, start=at, end=end
        )
        emu.store.note(item["id"])["subscription"] = sid
        sub_items.append(item)
    sub = objects.subscription(
        sid,
        at,
        customer=cus["id"],
        currency=items[0][0]["currency"],
        items=objects.list_object(f"/v1/subscription_items?subscription={sid}", sub_items),
        metadata=dict(metadata),
        default_payment_method=pm_id,
        latest_invoice=iid,
        status="trialing" if trial_end else "incomplete",
        test_clock=cus["test_clock"],
        description=description,
    )
    if trial_end:
        sub.update(trial_start=at, trial_end=trial_end, billing_cycle_anchor=trial_end)
    if discount is not None:  # (coupon, promotion code, checkout session id)
        from .discounts import subscription_discount

        subscription_discount(emu, sub, *discount)
    emu.store.add(sub)
    emu.emit("customer.subscription.created", sub)
    inv = create_invoice(
        emu, sub, "subscription_create", period_start=at, period_end=at, iid=iid,
        trial=bool(trial_end),
    )  # fmt: skip
    finalize_invoice(emu, inv)
    pay_invoice(emu, inv, "checkout")
    if trial_end and trial_end - 3 * DAY > at:
        emu.schedule("trial_will_end", sid, trial_end - 3 * DAY, owner=sub)
    return sub, inv


@task("trial_will_end")
def trial_will_end(emu: Emulator, sub_id: str) -> None:
    sub = emu.store.get(sub_id, "subscription")
    if sub is not None and sub["status"] == "trialing":
        emu.emit("customer.subscription.trial_will_end", sub)


def cancel_now(
    emu: Emulator, sub: dict[str, Any], reason: str = "cancellation_requested", **details: Any
) -> None:
    at = emu.now_for(sub)
    schedule = emu.store.get(sub["schedule"]) if sub.get("schedule") else None
    if schedule is not None and schedule["status"] == "active":
        schedule.update(status="canceled", canceled_at=at, current_phase=None)
        emu.emit("subscription_schedule.canceled", schedule)
    sub.update(status="canceled", ended_at=at, pending_update=None)
    sub["canceled_at"] = sub["canceled_at"] or at
    sub["cancellation_details"].update(reason=reason, **details)
    for inv in emu.store.all("invoice"):
        if inv["status"] == "open" and _sub_of(inv) == sub["id"]:
            inv["next_payment_attempt"] = None
    emu.emit("customer.subscription.deleted", sub)


def _sub_of(inv: dict[str, Any]) -> str | None:
    parent = inv.get("parent") or {}
    return (parent.get("subscription_details") or {}).get("subscription")


def renew(emu: Emulator, sub: dict[str, Any]) -> None:
    """Start the next period: advance item periods, invoice it and try to collect."""
    from .schedules import at_period_end

    before = copy.deepcopy(sub)
    first = sub["items"]["data"][0]
    old_start, old_end = first["current_period_start"], first["current_period_end"]
    if at_period_end(emu, sub, old_end) == "cancel":
        cancel_now(emu, sub)
        return
    for item in sub["items"]["data"]:
        rec = item["price"]["recurring"]
        item["current_period_start"] = item["current_period_end"]
        item["current_period_end"] = add_interval(
            item["current_period_end"], rec["interval"], rec["interval_count"]
        )
    if sub["status"] == "trialing":  # the trial ended: the first paid period begins
        sub["status"] = "active"
    emu.emit("customer.subscription.updated", sub, _diff(before, sub))
    pending = [
        ii
        for ii in reversed(emu.store.all("invoiceitem"))
        if ii["invoice"] is None
        and ii["customer"] == sub["customer"]
        and ((ii["parent"] or {}).get("subscription_details") or {}).get("subscription")
        == sub["id"]
    ]
    inv = create_invoice(
        emu, sub, "subscription_cycle", period_start=old_start, period_end=old_end, pending=pending
    )
    sub["latest_invoice"] = inv["id"]
    # Stripe leaves a renewal invoice in draft for about an hour after invoice.created, then
    # finalizes it and tries to collect (automatically_finalizes_at).
    emu.schedule("invoice_auto_advance", inv["id"], inv["automatically_finalizes_at"], owner=sub)


@task("invoice_auto_advance")
def auto_advance(emu: Emulator, invoice_id: str) -> None:
    """An hour after a renewal invoice was created: finalize it and collect."""
    inv = emu.store.get(invoice_id, "invoice")
    if inv is None or inv["status"] != "draft":
        return  # finalized, paid or voided by hand meanwhile
    finalize_invoice(emu, inv)
    pay_invoice(emu, inv, "renewal")


@contextmanager
def at_time(emu: Emulator, clock: dict[str, Any] | None, at: int) -> Iterator[None]:
    """Run the block at time ``at``: on the test ``clock`` (left there), or the global clock."""
    if clock is not None:
        clock["frozen_time"] = at
    else:
        emu._local.now = at
    try:
        yield
    finally:
        emu._local.now = None


def run_due(emu: Emulator, clock_id: str | None, until: int) -> None:
    """Run renewals, retries and scheduled cancellations due up to ``until``, in time order."""
    clock = emu.store.get(clock_id) if clock_id else None
    for _ in range(10_000):
        due: list[tuple[int, int, str, dict[str, Any]]] = []
        for sub in emu.store.all("subscription"):
            if sub["test_clock"] != clock_id or sub["status"] not in (
                "active",
                "past_due",
                "trialing",
            ):
                continue
            end = min(i["current_period_end"] for i in sub["items"]["data"])
            if sub["cancel_at"] and sub["cancel_at"] <= end:
                due.append((sub["cancel_at"], 0, "cancel", sub))
            else:
                due.append((end, 1, "renew", sub))
        for sub in emu.store.all("subscription"):
            if sub["test_clock"] == clock_id and sub.get("pending_update"):
                due.append((sub["pending_update"]["expires_at"], 4, "pending_expired", sub))
        for session in emu.store.all("checkout.session"):
            if session["status"] == "open" and emu.clock_of(session) == clock_id:
                due.append((session["expires_at"], 3, "expire", session))
        for inv in emu.store.all("invoice"):
            if (
                inv["status"] == "open"
                and inv["next_payment_attempt"]
                and inv["test_clock"] == clock_id
            ):
                due.append((inv["next_payment_attempt"], 2, "retry", inv))
        for work in emu.store.scheduled:
            if work["clock"] == clock_id:
                due.append((work["at"], 2, "task", work))
        due = [d for d in due if d[0] <= until]
        if not due:
            break
        at, _, action, obj = min(due, key=lambda d: (d[0], d[1]))
        with at_time(emu, clock, at):
            if action == "cancel":
                cancel_now(emu, obj)
            elif action == "renew":
                renew(emu, obj)
            elif action == "task":
                emu.store.scheduled.remove(obj)
                TASKS[obj["kind"]](emu, obj["id"], **obj["args"])
            elif action == "pending_expired":
                expire_pending_update(emu, obj)
            elif action == "expire":
                obj.update(status="expired", url=None)
                emu.emit("checkout.session.expired", obj)
            else:
                pay_invoice(emu, obj, "retry")
    if clock is not None:
        clock["frozen_time"] = until


def proration_items(
    emu: Emulator,
    sub: dict[str, Any],
    item: dict[str, Any],
    new_price: dict[str, Any],
    qty: int,
    when: int,
    credit_only: bool,
) -> list[dict[str, Any]]:
    """Credit for unused time on the old price and (unless the period restarts) a charge for
    the remaining time on the new one. Stored pending; the caller emits the events."""
    start, end = item["current_period_start"], item["current_period_end"]
    if not start <= when < end:
        return []
    remaining, total = end - when, end - start
    old = item["price"]
    result = []
    parts = [(old, item["quantity"], -1, "Unused time on")]
    if not credit_only:
        parts.append((new_price, qty, 1, "Remaining time on"))
    for price, quantity, sign, label in parts:
        amount = sign * round(price["unit_amount"] * quantity * remaining / total)
        product = emu.store.get(price["product"]) or {"name": price["product"]}
        ii = objects.invoice_item(
            emu.new_id("ii_"),
            when,
            customer=sub["customer"],
            amount=amount,
            currency=price["currency"],
            description=f"{label} {quantity} × {product['name']} after {fmt_date(when)}",
            price_obj=price,
            start=when,
            end=end,
            sub_id=sub["id"],
            si_id=item["id"],
            proration=True,
            test_clock=sub["test_clock"],
        )
        emu.store.add(ii)
        result.append(ii)
    return result


SUB_UPDATE_SPEC = {
    "items": [
        {"id": "str", "price": "str", "quantity": "int", "deleted": "bool", "metadata": "meta"}
    ],
    "proration_behavior": "str",
    "proration_date": "int",
    "cancel_at_period_end": "bool",
    "cancel_at": "str",
    "metadata": "meta",
    "payment_behavior": "str",
    "default_payment_method": "str",
    "description": "str",
    "cancellation_details": {"comment": "str", "feedback": "str"},
}
PRORATION_BEHAVIORS = ("create_prorations", "always_invoice", "none")
PAYMENT_BEHAVIORS = (
    "allow_incomplete",
    "default_incomplete",
    "error_if_incomplete",
    "pending_if_incomplete",
)
# Stripe's pending updates accept only these (docs: "Pending updates reference").
PENDING_UPDATE_PARAMS = {
    "expand",
    "payment_behavior",
    "proration_behavior",
    "proration_date",
    "billing_cycle_anchor",
    "items",
    "trial_end",
    "trial_from_plan",
    "add_invoice_items",
}
PENDING_UPDATE_HOURS = 23


def apply_pending_update(emu: Emulator, sub: dict[str, Any]) -> None:
    """The pending update's invoice was paid: its changes take effect now."""
    pending = sub.get("pending_update")
    if not pending:
        return
    before = copy.deepcopy(sub)
    sub["items"]["data"] = pending["subscription_items"]
    if pending.get("billing_cycle_anchor"):
        sub["billing_cycle_anchor"] = pending["billing_cycle_anchor"]
    sub["pending_update"] = None
    emu.emit("customer.subscription.pending_update_applied", sub, _diff(before, sub))
    emu.emit("customer.subscription.updated", sub, _diff(before, sub))


def expire_pending_update(emu: Emulator, sub: dict[str, Any]) -> None:
    """Nobody paid the pending update's invoice in time: its changes are discarded."""
    if not sub.get("pending_update"):
        return
    before = copy.deepcopy(sub)
    sub["pending_update"] = None
    emu.emit("customer.subscription.pending_update_expired", sub, _diff(before, sub))


def update_subscription(
    emu: Emulator, sub: dict[str, Any], p: dict[str, Any], *, collect: bool = True
) -> dict[str, Any]:
    """Apply a subscription update (API, portal): validate everything, then mutate.

    ``collect=False`` (an invoice preview) leaves an invoice the update bills now in draft."""
    behavior = p.get("proration_behavior", "create_prorations")
    if behavior not in PRORATION_BEHAVIORS:
        raise invalid("proration_behavior", f"Invalid proration_behavior: {behavior}")
    payment_behavior = p.get("payment_behavior", "allow_incomplete")
    if payment_behavior not in PAYMENT_BEHAVIORS:
        raise invalid("payment_behavior", f"Invalid payment_behavior: {payment_behavior}")
    if payment_behavior == "pending_if_incomplete":
        extra = sorted(set(p) - PENDING_UPDATE_PARAMS)
        if extra:
            raise invalid(
                extra[0],
                f"The parameter {extra[0]} cannot be passed when creating a pending update. "
                "See https://stripe.com/docs/billing/pending-updates-reference.",
            )
    if sub.get("schedule") and ("cancel_at_period_end" in p or "cancel_at" in p):
        raise invalid(
            "cancel_at_period_end",
            f"The subscription is managed by the subscription schedule `{sub['schedule']}`, "
            "and updating any cancelation behavior directly is not allowed. Please update "
            "the schedule instead.",
        )
    if sub["status"] in ("canceled", "incomplete_expired"):
        allowed = {"metadata", "cancellation_details", "expand"}
        if set(p) - allowed:
            raise invalid(
                "id",
                "A canceled subscription can only update its cancellation_details and metadata.",
            )
    changes = []
    for i, spec in enumerate(p.get("items", [])):
        item = None
        if "id" in spec:
            item = next((x for x in sub["items"]["data"] if x["id"] == spec["id"]), None)
            if item is None:
                raise invalid(
                    f"items[{i}][id]",
                    f"No such subscription item: '{spec['id']}'",
                    "resource_missing",
                )
        else:
            raise invalid(
                f"items[{i}][id]",
                "Adding items is not supported by the emulator; "
                "pass items[0][id] to change the price.",
            )
        if spec.get("deleted"):
            raise invalid(
                f"items[{i}][deleted]", "Deleting items is not supported by the emulator."
            )
        price = item["price"]
        if "price" in spec:
            price = emu.get("price", spec["price"], f"items[{i}][price]")
            if not price["active"] or not price["recurring"]:
                raise invalid(f"items[{i}][price]", "The price must be an active recurring price.")
            if price["currency"] != sub["currency"]:
                raise invalid(f"items[{i}][price]", "The price's currency must match.")
        changes.append((item, price, spec.get("quantity", item["quantity"]), spec))
    cancel_at = p.get("cancel_at")
    if cancel_at in ("min_period_end", "max_period_end"):
        ends = [i["current_period_end"] for i in sub["items"]["data"]]
        cancel_at = min(ends) if cancel_at == "min_period_end" else max(ends)
    if cancel_at not in (None, ""):
        try:
            cancel_at = int(cancel_at)
        except ValueError:
            raise invalid(
                "cancel_at", f"Invalid integer: {cancel_at}", "parameter_invalid_integer"
            ) from None
    if p.get("default_payment_method"):
        pm = emu.get("payment_method", p["default_payment_method"], "default_payment_method")
        if pm["customer"] != sub["customer"]:
            raise invalid(
                "default_payment_method", "The payment method must belong to the customer."
            )
    # -- mutate --
    at = emu.now_for(sub)
    when = p.get("proration_date", at)
    before = copy.deepcopy(sub)
    if "metadata" in p:
        sub["metadata"] = merge_metadata(sub["metadata"], p["metadata"])
    if "description" in p:
        sub["description"] = p["description"] or None
    if p.get("default_payment_method"):
        sub["default_payment_method"] = p["default_payment_method"]
    details = p.get("cancellation_details", {})
    if p.get("cancel_at_period_end") is True:
        end = max(i["current_period_end"] for i in sub["items"]["data"])
        sub.update(cancel_at_period_end=True, cancel_at=end, canceled_at=at)
        sub["cancellation_details"].update(reason="cancellation_requested", **details)
    elif p.get("cancel_at_period_end") is False or cancel_at == "":
        sub.update(cancel_at_period_end=False, cancel_at=None, canceled_at=None)
        sub["cancellation_details"] = objects.new("subscription.cancellation_details")
    if isinstance(cancel_at, int):
        sub.update(cancel_at=cancel_at, canceled_at=at)
        sub["cancellation_details"].update(reason="cancellation_requested", **details)
    elif details and not p.get("cancel_at_period_end"):
        sub["cancellation_details"].update(details)
    pending: list[dict[str, Any]] = []
    reset_period = False
    for item, price, quantity, spec in changes:
        if price["id"] != item["price"]["id"] or quantity != item["quantity"]:
            old_interval = (
                item["price"]["recurring"]["interval"],
                item["price"]["recurring"]["interval_count"],
            )
            new_interval = (price["recurring"]["interval"], price["recurring"]["interval_count"])
            restart = old_interval != new_interval  # the billing anchor resets
            if behavior != "none":
                pending += proration_items(emu, sub, item, price, quantity, when, restart)
            if restart:
                reset_period = True
                item["current_period_start"] = at
                item["current_period_end"] = add_interval(at, *new_interval)
                sub["billing_cycle_anchor"] = at
            item["price"] = copy.deepcopy(price)
            item["plan"] = objects.plan_from(price)
            item["quantity"] = quantity
        if "metadata" in spec:
            item["metadata"] = merge_metadata(item["metadata"], spec["metadata"])
    previous = _diff(before, sub)
    invoicing = reset_period or (behavior == "always_invoice" and bool(pending))
    # A pending update changes the subscription only once its invoice is paid.
    deferred = payment_behavior == "pending_if_incomplete" and invoicing
    if previous and not deferred:
        emu.emit("customer.subscription.updated", sub, previous)
    for ii in pending:
        emu.emit("invoiceitem.created", ii)
    if invoicing:
        end = sub["items"]["data"][0]["current_period_start"]
        inv = create_invoice(
            emu,
            sub,
            "subscription_update",
            period_start=when,
            period_end=end,
            with_sub_lines=reset_period,
            pending=pending,
        )
        sub["latest_invoice"] = inv["id"]
        if not collect:
            return sub
        finalize_invoice(emu, inv)
        if payment_behavior == "pending_if_incomplete":
            emu.store.note(inv["id"])["pending_update_of"] = sub["id"]
            changed = copy.deepcopy(sub["items"]["data"])
            if pay_invoice(emu, inv, "update"):
                emu.emit("customer.subscription.updated", sub, _diff(before, sub))
            else:
                _make_pending(emu, sub, before, changed, inv)
        else:
            pay_invoice(emu, inv, "update")
    return sub


def _make_pending(
    emu: Emulator,
    sub: dict[str, Any],
    before: dict[str, Any],
    changed: list[Any],
    inv: dict[str, Any],
) -> None:
    """The update's payment failed: the subscription goes back to what it was and keeps the
    changes in ``pending_update`` until the invoice is paid (or the update expires)."""
    at = emu.now_for(sub)
    pending = objects.new(
        "subscription.pending_update",
        expires_at=at + PENDING_UPDATE_HOURS * 3600,
        subscription_items=changed,
        billing_cycle_anchor=(
            sub["billing_cycle_anchor"]
            if sub["billing_cycle_anchor"] != before["billing_cycle_anchor"]
            else None
        ),
    )
    sub["items"]["data"] = copy.deepcopy(before["items"]["data"])
    sub["billing_cycle_anchor"] = before["billing_cycle_anchor"]
    sub["pending_update"] = pending
    emu.emit("customer.subscription.updated", sub, {"pending_update": None})


@routes("GET", f"/v1/subscriptions/{ID}")
def get_subscription(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("subscription", oid)


@routes("POST", f"/v1/subscriptions/{ID}")
def post_subscription(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse(SUB_UPDATE_SPEC)
    p.pop("expand", None)
    return update_subscription(emu, emu.get("subscription", oid), p)


@routes("DELETE", f"/v1/subscriptions/{ID}")
def delete_subscription(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse(
        {
            "invoice_now": "bool",
            "prorate": "bool",
            "cancellation_details": {"comment": "str", "feedback": "str"},
        }
    )
    sub = emu.get("subscription", oid)
    if sub["status"] == "canceled":
        raise invalid("id", f"This subscription ({oid}) has already been canceled.")
    cancel_now(emu, sub, **p.get("cancellation_details", {}))
    return sub


@routes("POST", f"/v1/subscriptions/{ID}/resume")
def resume_subscription(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    """Resume a paused subscription; the emulator also lets it undo a scheduled cancellation."""
    req.parse({"billing_cycle_anchor": "str", "proration_behavior": "str", "proration_date": "int"})
    sub = emu.get("subscription", oid)
    if sub["status"] == "paused":
        set_status(emu, sub, "active")
        emu.emit("customer.subscription.resumed", sub)
        return sub
    if sub["status"] in ("active", "past_due", "trialing") and sub["cancel_at"]:
        return update_subscription(emu, sub, {"cancel_at_period_end": False, "cancel_at": ""})
    raise invalid("id", "Only a paused subscription (or one scheduled to cancel) can be resumed.")


@routes("GET", "/v1/subscriptions")
def list_subscriptions(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(
        {**LIST_SPEC, "customer": "str", "status": "str", "price": "str", "test_clock": "str"}
    )
    items = filtered(
        emu.store.all("subscription"), customer=p.get("customer"), test_clock=p.get("test_clock")
    )
    status = p.get("status")
    if status is None:
        items = [s for s in items if s["status"] not in ("canceled", "incomplete_expired")]
    elif status != "all":
        items = [s for s in items if s["status"] == status]
    if p.get("price"):
        items = [
            s for s in items if any(i["price"]["id"] == p["price"] for i in s["items"]["data"])
        ]
    return paginate(items, p, "/v1/subscriptions")


@routes("GET", f"/v1/subscription_items/{ID}")
def get_subscription_item(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    item = emu.subscription_item(oid)
    if item is None:
        raise StripeError(
            404, f"No such subscription_item: '{oid}'", code="resource_missing", param="id"
        )
    return item


@routes("GET", "/v1/subscription_items")
def list_subscription_items(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "subscription": "str"})
    if "subscription" not in p:
        raise missing("subscription")
    sub = emu.get("subscription", p["subscription"], "subscription")
    return paginate(
        list(sub["items"]["data"]), p, f"/v1/subscription_items?subscription={sub['id']}"
    )


# --- invoices ---------------------------------------------------------------------------
@routes("GET", f"/v1/invoices/{ID}")
def get_invoice(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("invoice", oid)


@routes("GET", "/v1/invoices")
def list_invoices(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(
        {**LIST_SPEC, "customer": "str", "subscription": "str", "status": "str", "created": "range"}
    )
    items = filtered(emu.store.all("invoice"), customer=p.get("customer"), status=p.get("status"))
    if p.get("subscription"):
        items = [i for i in items if _sub_of(i) == p["subscription"]]
    from .api import created_filter

    return paginate(created_filter(items, p.get("created")), p, "/v1/invoices")


@routes("GET", f"/v1/invoices/{ID}/lines")
def list_invoice_lines(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse(LIST_SPEC)
    inv = emu.get("invoice", oid)
    return paginate(list(inv["lines"]["data"]), p, f"/v1/invoices/{oid}/lines")


@routes("POST", f"/v1/invoices/{ID}/pay")
def post_pay_invoice(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({"payment_method": "str", "paid_out_of_band": "bool", "off_session": "bool"})
    inv = emu.get("invoice", oid)
    if inv["status"] == "draft":
        finalize_invoice(emu, inv)
    if inv["status"] != "open":
        raise invalid("id", f"Invoice {oid} is already {inv['status']}.", "invoice_not_open")
    if p.get("paid_out_of_band"):
        inv.update(status="paid", amount_remaining=0, next_payment_attempt=None)
        inv["status_transitions"]["paid_at"] = emu.now_for(inv)
        emu.emit("invoice.paid", inv)
        return inv
    pm_id = p.get("payment_method")
    if pm_id and emu.get("payment_method", pm_id, "payment_method")["customer"] != inv["customer"]:
        raise invalid(
            "payment_method",
            f"The PaymentMethod {pm_id} does not belong to the invoice's customer "
            f"{inv['customer']}; attach it first.",
            "resource_missing",
        )
    if not pay_invoice(emu, inv, "retry" if pm_id is None else "manual", pm_id):
        pi = emu.get("payment_intent", last_payment_intent(emu, inv))
        if pi["status"] == "requires_action":
            raise StripeError(
                402,
                "This payment requires additional user action before it can be completed "
                "successfully. Payment can be completed using the hosted invoice page.",
                type="card_error",
                code="invoice_payment_intent_requires_action",
                extra={"payment_intent": copy.deepcopy(pi)},
            )
        raise card_declined(charge=pi["latest_charge"], payment_intent=copy.deepcopy(pi))
    return inv


def last_payment_intent(emu: Emulator, inv: dict[str, Any]) -> str:
    """The PaymentIntent of the invoice's latest payment attempt."""
    pays = [p for p in emu.store.all("invoice_payment") if p["invoice"] == inv["id"]]
    return str(pays[0]["payment"]["payment_intent"])


@routes("POST", f"/v1/invoices/{ID}/finalize")
def post_finalize_invoice(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({"auto_advance": "bool"})
    inv = emu.get("invoice", oid)
    if inv["status"] != "draft":
        raise invalid("id", "This invoice is already finalized.", "invoice_not_editable")
    finalize_invoice(emu, inv)
    return inv


@routes("POST", f"/v1/invoices/{ID}/void")
def post_void_invoice(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    inv = emu.get("invoice", oid)
    if inv["status"] != "open":
        raise invalid("id", "Only open invoices can be voided.")
    inv.update(status="void", next_payment_attempt=None, amount_remaining=0)
    inv["status_transitions"]["voided_at"] = emu.now_for(inv)
    emu.emit("invoice.voided", inv)
    return inv


@routes("POST", f"/v1/invoices/{ID}/mark_uncollectible")
def post_mark_uncollectible(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    inv = emu.get("invoice", oid)
    if inv["status"] != "open":
        raise invalid("id", "Only open invoices can be marked uncollectible.")
    inv.update(status="uncollectible", next_payment_attempt=None)
    inv["status_transitions"]["marked_uncollectible_at"] = emu.now_for(inv)
    emu.emit("invoice.marked_uncollectible", inv)
    return inv


# --- test clocks ------------------------------------------------------------------------
@routes("POST", "/v1/test_helpers/test_clocks")
def create_test_clock(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({"frozen_time": "int", "name": "str"})
    if "frozen_time" not in p:
        raise missing("frozen_time")
    clock = objects.test_clock(
        emu.new_id("clock_"), emu.now(), frozen_time=p["frozen_time"], name=p.get("name")
    )
    emu.store.add(clock)
    emu.emit("test_helpers.test_clock.created", clock, at=emu.now())
    return clock


@routes("GET", f"/v1/test_helpers/test_clocks/{ID}")
def get_test_clock(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("test_helpers.test_clock", oid)


@routes("GET", "/v1/test_helpers/test_clocks")
def list_test_clocks(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(LIST_SPEC)
    return paginate(emu.store.all("test_helpers.test_clock"), p, "/v1/test_helpers/test_clocks")


@routes("POST", f"/v1/test_helpers/test_clocks/{ID}/advance")
def advance_test_clock(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({"frozen_time": "int"})
    if "frozen_time" not in p:
        raise missing("frozen_time")
    return advance_clock(emu, oid, p["frozen_time"])


def advance_clock(emu: Emulator, clock_id: str, frozen_time: int) -> dict[str, Any]:
    """Advance a test clock, running everything due on it. Returns the 'advancing' snapshot."""
    clock = emu.get("test_helpers.test_clock", clock_id)
    if frozen_time <= clock["frozen_time"]:
        raise invalid(
            "frozen_time",
            "The frozen_time must be after the test clock's current frozen_time.",
            "parameter_invalid_integer",
        )
    clock["status"] = "advancing"
    clock["status_details"] = {"advancing": {"target_frozen_time": frozen_time}}
    emu.emit("test_helpers.test_clock.advancing", clock, at=emu.now())
    snapshot = copy.deepcopy(clock)
    snapshot["frozen_time"] = frozen_time
    run_due(emu, clock_id, frozen_time)
    clock.update(status="ready", status_details={"advancing": None})
    emu.emit("test_helpers.test_clock.ready", clock, at=emu.now())
    return snapshot


@routes("DELETE", f"/v1/test_helpers/test_clocks/{ID}")
def delete_test_clock(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    clock = emu.get("test_helpers.test_clock", oid)
    emu.store.remove(oid)
    emu.emit("test_helpers.test_clock.deleted", clock, at=emu.now())
    return {"id": oid, "object": "test_helpers.test_clock", "deleted": True}
