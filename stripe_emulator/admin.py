"""The emulator's own admin API under ``/_emulator/`` (not Stripe's; loopback only, no key).

Parameters may be sent as a query string or a form body.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import billing
from .checkout import TEST_CARDS, complete
from .core import Request, Response, Routes
from .errors import invalid, missing

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
OUTCOME_CARDS = {
    "success": "4242424242424242",
    "decline": "4000000000000002",
    "fail_later": "4000000000000341",
}


@routes("GET", "/_emulator")
def index(emu: Emulator, req: Request) -> dict[str, Any]:
    return {
        "emulator": "stripe_emulator",
        "base_url": emu.base_url,
        "delivery": emu.dispatcher.mode,
        "chaos": emu.dispatcher.chaos,
        "paused": emu.paused,
        "now": emu.now(),
        "clock_offset": emu.store.clock_offset,
        "test_cards": TEST_CARDS,
        "counts": {kind: len(ids) for kind, ids in emu.store.order.items()},
    }


@routes("POST", "/_emulator/reset")
def reset(emu: Emulator, req: Request) -> dict[str, Any]:
    emu.reset()
    return {"reset": True}


@routes("GET", "/_emulator/webhook_endpoints")
def list_endpoints(emu: Emulator, req: Request) -> dict[str, Any]:
    with emu.lock:
        out = []
        for endpoint in emu.store.all("webhook_endpoint"):
            shown = copy.deepcopy(endpoint)
            shown["secret"] = emu.store.note(endpoint["id"])["secret"]
            out.append(shown)
    return {"object": "list", "data": out}


@routes("POST", "/_emulator/webhook_endpoints")
def add_endpoint(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({"url": "str", "secret": "str", "events": "strs", "api_version": "str"})
    if "url" not in p:
        raise missing("url")
    return emu.add_webhook_endpoint(
        p["url"], p.get("secret"), p.get("events") or ["*"], p.get("api_version")
    )


@routes("POST", r"/_emulator/checkout/(?P<oid>[^/]+)/complete")
def complete_session(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse(
        {"card": "str", "outcome": "str", "email": "str", "name": "str", "bank_account": "str"}
    )
    if p.get("bank_account"):
        with emu.transaction():
            session = complete(
                emu, oid, email=p.get("email"), name=p.get("name"), bank_account=p["bank_account"]
            )
            return copy.deepcopy(session)
    card = p.get("card")
    if card is None:
        outcome = p.get("outcome", "success")
        if outcome not in OUTCOME_CARDS:
            raise invalid("outcome", f"outcome must be one of {sorted(OUTCOME_CARDS)}")
        card = OUTCOME_CARDS[outcome]
    with emu.transaction():
        session = complete(emu, oid, card, email=p.get("email"), name=p.get("name"))
        return copy.deepcopy(session)


@routes("POST", r"/_emulator/customers/(?P<oid>[^/]+)/renewal_outcome")
def renewal_outcome(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({"outcome": "str"})
    outcome = p.get("outcome", "fail")
    if outcome not in ("fail", "succeed"):
        raise invalid("outcome", "outcome must be 'fail' or 'succeed'")
    emu.set_renewal_outcome(oid, outcome)
    return {"customer": oid, "next_renewal": outcome}


@routes("POST", r"/_emulator/charges/(?P<oid>[^/]+)/dispute")
def dispute(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({"reason": "str", "inquiry": "bool"})
    return emu.dispute_charge(oid, p.get("reason", "fraudulent"), inquiry=p.get("inquiry", False))


@routes("POST", r"/_emulator/disputes/(?P<oid>[^/]+)/resolve")
def resolve(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({"outcome": "str"})
    if "outcome" not in p:
        raise missing("outcome")
    return emu.resolve_dispute(oid, p["outcome"])


@routes("GET", "/_emulator/dunning")
def get_dunning(emu: Emulator, req: Request) -> dict[str, Any]:
    return emu.dunning


@routes("POST", "/_emulator/dunning")
def set_dunning(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({"retry_days": "strs", "subscription": "str", "invoice": "str"})
    try:
        days = [float(d) for d in p["retry_days"]] if "retry_days" in p else None
        return emu.set_dunning(
            retry_days=days, subscription=p.get("subscription"), invoice=p.get("invoice")
        )
    except ValueError as exc:
        raise invalid("dunning", str(exc)) from None


@routes("POST", "/_emulator/clock/advance")
def advance(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({"seconds": "int", "days": "int"})
    seconds = p.get("seconds", 0) + p.get("days", 0) * billing.DAY
    if seconds <= 0:
        raise invalid("seconds", "Advance by a positive number of seconds (or days).")
    return {"now": emu.advance_clock(seconds), "clock_offset": emu.store.clock_offset}


@routes("GET", "/_emulator/deliveries")
def deliveries(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({"event": "str", "endpoint": "str", "failed": "bool"})
    found = [
        d
        for d in emu.deliveries
        if p.get("event") in (None, d["event"])
        and p.get("endpoint") in (None, d["endpoint"])
        and (not p.get("failed") or not d["ok"])
    ]
    return {"object": "list", "data": found}


@routes("POST", "/_emulator/deliveries/redeliver")
def redeliver(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({"event": "str", "endpoint": "str"})
    if "event" not in p:
        raise missing("event")
    statuses = emu.redeliver(p["event"], p.get("endpoint"))
    return {"event": p["event"], "statuses": statuses}


@routes("POST", "/_emulator/chaos")
def chaos(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({"enabled": "bool", "seed": "int"})
    emu.set_chaos(p.get("enabled", True), p.get("seed"))
    return {"chaos": emu.dispatcher.chaos}


@routes("POST", "/_emulator/pause")
def pause(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({"seconds": "int"})
    if "seconds" in p and p["seconds"] <= 0:
        raise invalid("seconds", "Pause for a positive number of seconds (or until resumed).")
    emu.pause(p.get("seconds"))
    return {"paused": True, "seconds": p.get("seconds")}


@routes("POST", "/_emulator/resume")
def resume(emu: Emulator, req: Request) -> dict[str, Any]:
    emu.resume()
    return {"paused": False}


@routes("POST", "/_emulator/flush")
def flush(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({"timeout": "int", "everything": "bool"})
    if p.get("everything"):  # late chaos deliveries and pending retries too, now
        emu.dispatcher.release()
    drained = emu.flush(p.get("timeout", 30))
    return {"drained": drained, "pending": emu.dispatcher.pending()}


@routes("GET", "/_emulator/state")
def state(emu: Emulator, req: Request) -> Response:
    with emu.lock:
        return Response.of_json(200, emu.store.to_json())
