"""Subscription schedules.

Schedules (``/v1/subscription_schedules``) as Stripe documents them for the one use the portal
and the app make of them: ``from_subscription`` takes over a subscription with one phase (its
current price until its period end); an update sets the phases (``end_date`` or ``duration``);
when a phase ends at the subscription's period end the next phase's price takes over without
proration and the renewal bills it; after the last phase the schedule is ``released``
(``end_behavior=release``) or the subscription cancelled (``cancel``). A subscription that a
schedule manages refuses direct cancellation changes, as Stripe does.
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

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()


def emit_updated(
    emu: Emulator, event_type: str, obj: dict[str, Any], before: dict[str, Any]
) -> None:
    """``*.updated`` with the changed top-level fields' old values, as Stripe sends it."""
    previous = {k: copy.deepcopy(before.get(k)) for k in obj if before.get(k) != obj[k]}
    if previous:
        emu.emit(event_type, obj, previous)


ID = r"(?P<oid>[^/]+)"


# --- subscription schedules -------------------------------------------------------------
def phase_build(
    emu: Emulator, sub: dict[str, Any], price: dict[str, Any], quantity: int, start: int, end: int
) -> dict[str, Any]:
    item = objects.new(
        "subscription_schedule.phases.items",
        price=price["id"],
        plan=price["id"],
        quantity=quantity,
        metadata={},
        tax_rates=[],
    )
    return objects.new(
        "subscription_schedule.phases",
        currency=sub["currency"],
        start_date=start,
        end_date=end,
        items=[item],
        metadata={},
        proration_behavior="create_prorations",
        default_tax_rates=[],
    )


def current_phase_refresh(emu: Emulator, schedule: dict[str, Any], at: int) -> None:
    current = next((p for p in schedule["phases"] if p["start_date"] <= at < p["end_date"]), None)
    schedule["current_phase"] = (
        objects.new(
            "subscription_schedule.current_phase",
            start_date=current["start_date"],
            end_date=current["end_date"],
        )
        if current
        else None
    )


def schedule_from_subscription(
    emu: Emulator, sub: dict[str, Any], metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A schedule that takes over ``sub``: one phase, its price until its period end."""
    if sub["schedule"]:
        raise invalid(
            "from_subscription",
            f"You cannot migrate a subscription that is already attached to a schedule: "
            f"`{sub['schedule']}`.",
        )
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise invalid("from_subscription", "The subscription has already ended.")
    at = emu.now_for(sub)
    item = sub["items"]["data"][0]
    sid = emu.new_id("sub_sched_")
    schedule = objects.new(
        "subscription_schedule",
        id=sid,
        created=at,
        customer=sub["customer"],
        subscription=sub["id"],
        end_behavior="release",
        status="active",
        metadata=dict(metadata or {}),
        test_clock=sub["test_clock"],
        phases=[
            phase_build(
                emu,
                sub,
                item["price"],
                item["quantity"],
                item["current_period_start"],
                item["current_period_end"],
            )
        ],
    )
    current_phase_refresh(emu, schedule, at)
    emu.store.add(schedule)
    before = copy.deepcopy(sub)
    sub["schedule"] = sid
    emu.emit("subscription_schedule.created", schedule)
    emu.emit("customer.subscription.updated", sub, {"schedule": before["schedule"]})
    return schedule


SCHEDULE_PHASE_SPEC = {
    "items": [{"price": "str", "quantity": "int", "metadata": "meta"}],
    "start_date": "str",
    "end_date": "int",
    "duration": {"interval": "str", "interval_count": "int"},
    "proration_behavior": "str",
    "metadata": "meta",
}


@routes("POST", "/v1/subscription_schedules")
def create_schedule(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({"from_subscription": "str", "metadata": "meta", "customer": "str"})
    if "from_subscription" not in p:
        raise missing("from_subscription")
    sub = emu.get("subscription", p["from_subscription"], "from_subscription")
    return schedule_from_subscription(emu, sub, merge_metadata({}, p.get("metadata")))


@routes("GET", f"/v1/subscription_schedules/{ID}")
def get_schedule(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("subscription_schedule", oid)


@routes("GET", "/v1/subscription_schedules")
def list_schedules(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "customer": "str"})
    items = emu.store.all("subscription_schedule")
    if p.get("customer"):
        items = [s for s in items if s["customer"] == p["customer"]]
    return paginate(items, p, "/v1/subscription_schedules")


@routes("POST", f"/v1/subscription_schedules/{ID}")
def update_schedule(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse(
        {
            "phases": [SCHEDULE_PHASE_SPEC],
            "end_behavior": "str",
            "metadata": "meta",
            "proration_behavior": "str",
        }
    )
    schedule = emu.get("subscription_schedule", oid)
    if schedule["status"] not in ("active", "not_started"):
        raise invalid(
            "id", f"You cannot update a subscription schedule that is {schedule['status']}."
        )
    sub = emu.get("subscription", schedule["subscription"])
    before = copy.deepcopy(schedule)
    if "end_behavior" in p:
        if p["end_behavior"] not in ("release", "cancel"):
            raise invalid("end_behavior", f"Invalid end_behavior: {p['end_behavior']}")
        schedule["end_behavior"] = p["end_behavior"]
    if "metadata" in p:
        schedule["metadata"] = merge_metadata(schedule["metadata"], p["metadata"])
    if "phases" in p:
        schedule["phases"] = _phases(emu, sub, schedule, p["phases"])
    current_phase_refresh(emu, schedule, emu.now_for(sub))
    emit_updated(emu, "subscription_schedule.updated", schedule, before)
    return schedule


def _phases(
    emu: Emulator, sub: dict[str, Any], schedule: dict[str, Any], specs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if not specs:
        raise missing("phases")
    at = emu.now_for(sub)
    current = schedule["current_phase"]
    start = current["start_date"] if current else at
    phases = []
    for i, spec in enumerate(specs):
        if spec.get("start_date") not in (None, "", "now"):
            start = int(spec["start_date"])
        if not spec.get("items"):
            raise missing(f"phases[{i}][items]")
        price = emu.get("price", spec["items"][0].get("price", ""), f"phases[{i}][items][0][price]")
        if not price["recurring"] or price["currency"] != sub["currency"]:
            raise invalid(
                f"phases[{i}][items][0][price]", "The price must be recurring, same currency."
            )
        if "end_date" in spec and "duration" in spec:
            raise invalid(
                f"phases[{i}][duration]", "You may only specify one of end_date, duration."
            )
        if "end_date" in spec:
            end = spec["end_date"]
        elif "duration" in spec:
            d = spec["duration"]
            end = add_interval(start, d.get("interval", "month"), d.get("interval_count", 1))
        else:
            rec = price["recurring"]
            end = add_interval(start, rec["interval"], rec["interval_count"])
        if end <= start:
            raise invalid(f"phases[{i}][end_date]", "The phase must end after it starts.")
        phase = phase_build(emu, sub, price, spec["items"][0].get("quantity", 1), start, end)
        if spec.get("proration_behavior"):
            phase["proration_behavior"] = spec["proration_behavior"]
        phases.append(phase)
        start = end
    if current and phases[0]["start_date"] != current["start_date"]:
        raise invalid("phases[0][start_date]", "The current phase's start date cannot change.")
    return phases


def release(emu: Emulator, schedule: dict[str, Any]) -> dict[str, Any]:
    sub = emu.store.get(schedule["subscription"]) if schedule["subscription"] else None
    at = emu.now_for(sub or schedule["customer"])
    schedule.update(
        status="released",
        released_at=at,
        released_subscription=schedule["subscription"],
        subscription=None,
        current_phase=None,
    )
    emu.emit("subscription_schedule.released", schedule)
    if sub is not None and sub["schedule"] == schedule["id"]:
        sub["schedule"] = None
        emu.emit("customer.subscription.updated", sub, {"schedule": schedule["id"]})
    return schedule


@routes("POST", f"/v1/subscription_schedules/{ID}/release")
def post_release(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({"preserve_cancel_date": "bool"})
    schedule = emu.get("subscription_schedule", oid)
    if schedule["status"] not in ("active", "not_started"):
        raise invalid(
            "id", f"You cannot release a subscription schedule that is {schedule['status']}."
        )
    return release(emu, schedule)


@routes("POST", f"/v1/subscription_schedules/{ID}/cancel")
def post_cancel(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    from .billing import cancel_now

    req.parse({"invoice_now": "bool", "prorate": "bool"})
    schedule = emu.get("subscription_schedule", oid)
    if schedule["status"] not in ("active", "not_started"):
        raise invalid(
            "id", f"You cannot cancel a subscription schedule that is {schedule['status']}."
        )
    sub = emu.store.get(schedule["subscription"]) if schedule["subscription"] else None
    schedule.update(status="canceled", canceled_at=emu.now_for(sub or schedule["customer"]))
    schedule["current_phase"] = None
    emu.emit("subscription_schedule.canceled", schedule)
    if sub is not None and sub["status"] not in ("canceled", "incomplete_expired"):
        sub["schedule"] = None
        cancel_now(emu, sub)
    return schedule


def at_period_end(emu: Emulator, sub: dict[str, Any], period_end: int) -> str:
    """Before a renewal at ``period_end``: move a scheduled subscription to its next phase.

    Returns "renew" (go on, maybe at the next phase's price) or "cancel".
    """
    schedule = emu.store.get(sub["schedule"]) if sub["schedule"] else None
    if schedule is None or schedule["status"] != "active":
        return "renew"
    following = next((p for p in schedule["phases"] if p["start_date"] == period_end), None)
    if following is None:
        if schedule["end_behavior"] == "cancel":
            schedule.update(status="completed", completed_at=period_end, current_phase=None)
            emu.emit("subscription_schedule.completed", schedule)
            return "cancel"
        release(emu, schedule)
        return "renew"
    item = sub["items"]["data"][0]
    price = emu.get("price", following["items"][0]["price"])
    item["price"] = copy.deepcopy(price)
    item["plan"] = objects.plan_from(price)
    item["quantity"] = following["items"][0]["quantity"] or 1
    before = copy.deepcopy(schedule)
    current_phase_refresh(emu, schedule, period_end)
    emit_updated(emu, "subscription_schedule.updated", schedule, before)
    return "renew"
