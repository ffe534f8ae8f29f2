"""Coupons, promotion codes and the discounts they make (Checkout, subscriptions, invoices).

- a coupon is ``percent_off`` or ``amount_off`` (with ``currency``), for ``once``,
  ``repeating`` (``duration_in_months``) or ``forever``; ``max_redemptions``, ``redeem_by``;
- a promotion code is a customer-facing ``code`` for a coupon (``promotion.coupon``);
- Checkout takes ``discounts[0][coupon|promotion_code]`` or ``allow_promotion_codes`` (the
  customer types a code on the page), not both;
- a payment-mode session is discounted on its total (``total_details.amount_discount`` and the
  breakdown); a total of zero completes ``no_payment_required`` without a payment;
- a subscription gets a ``discount`` object (``discounts``) that reduces every invoice while it
  lasts (once: the first invoice; repeating: for so many months; forever), shown on the
  invoice as ``discounts`` and ``total_discount_amounts`` and on its lines.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import objects
from .billing import add_interval
from .core import Request, Routes
from .errors import StripeError, invalid, missing
from .listing import LIST_SPEC, paginate
from .params import merge_metadata

if TYPE_CHECKING:
    from .core import Emulator

routes = Routes()
ID = r"(?P<oid>[^/]+)"


def _redeemable(emu: Emulator, coupon: dict[str, Any], param: str) -> None:
    at = emu.now()
    if not coupon["valid"] or (coupon["redeem_by"] and coupon["redeem_by"] < at):
        raise invalid(param, f"Coupon {coupon['id']} is no longer valid.", "coupon_expired")


@routes("POST", "/v1/coupons")
def create_coupon(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(
        {
            "id": "str",
            "name": "str",
            "percent_off": "str",
            "amount_off": "int",
            "currency": "str",
            "duration": "str",
            "duration_in_months": "int",
            "max_redemptions": "int",
            "redeem_by": "int",
            "metadata": "meta",
        }
    )
    if ("percent_off" in p) == ("amount_off" in p):
        raise invalid("percent_off", "You must pass exactly one of percent_off or amount_off.")
    percent = None
    if "percent_off" in p:
        try:
            percent = float(p["percent_off"])
        except ValueError:
            raise invalid("percent_off", "Invalid decimal: percent_off") from None
        if not 0 < percent <= 100:
            raise invalid("percent_off", "percent_off must be between 0 and 100.")
    if "amount_off" in p and not p.get("currency"):
        raise missing("currency")
    duration = p.get("duration", "once")
    if duration not in ("once", "repeating", "forever"):
        raise invalid("duration", f"Invalid duration: {duration}")
    if (duration == "repeating") != ("duration_in_months" in p):
        raise invalid(
            "duration_in_months", "duration_in_months is required for (only) repeating coupons."
        )
    cid = p.get("id") or emu.store.new_id("", 8)
    if emu.store.get(cid):
        raise StripeError(400, "Coupon already exists.", code="resource_already_exists")
    coupon = objects.new(
        "coupon",
        id=cid,
        created=emu.now(),
        name=p.get("name"),
        percent_off=percent,
        amount_off=p.get("amount_off"),
        currency=p.get("currency") if "amount_off" in p else None,
        duration=duration,
        duration_in_months=p.get("duration_in_months"),
        max_redemptions=p.get("max_redemptions"),
        redeem_by=p.get("redeem_by"),
        metadata=merge_metadata({}, p.get("metadata")),
        valid=True,
    )
    coupon.pop("currency_options", None)  # includable: only with expand[]=currency_options
    emu.store.add(coupon)
    emu.emit("coupon.created", coupon)
    return coupon


@routes("GET", f"/v1/coupons/{ID}")
def get_coupon(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("coupon", oid)


@routes("GET", "/v1/coupons")
def list_coupons(emu: Emulator, req: Request) -> dict[str, Any]:
    return paginate(emu.store.all("coupon"), req.parse(LIST_SPEC), "/v1/coupons")


@routes("DELETE", f"/v1/coupons/{ID}")
def delete_coupon(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    coupon = emu.get("coupon", oid)
    coupon["valid"] = False
    coupon["deleted"] = True
    emu.emit("coupon.deleted", coupon)
    return {"id": oid, "object": "coupon", "deleted": True}


@routes("POST", "/v1/promotion_codes")
def create_promotion_code(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse(
        {
            "promotion": {"type": "str", "coupon": "str"},
            "code": "str",
            "active": "bool",
            "max_redemptions": "int",
            "expires_at": "int",
            "customer": "str",
            "metadata": "meta",
        }
    )
    coupon_id = p.get("promotion", {}).get("coupon")
    if not coupon_id:
        raise missing("promotion[coupon]")
    emu.get("coupon", coupon_id, "promotion[coupon]")
    code = p.get("code") or emu.store.new_id("", 8).upper()
    if any(
        pc["code"].lower() == code.lower() and pc["active"]
        for pc in emu.store.all("promotion_code")
    ):
        raise invalid("code", f"An active promotion code with the code {code} already exists.")
    promo = objects.new(
        "promotion_code",
        id=emu.new_id("promo_"),
        created=emu.now(),
        code=code,
        active=p.get("active", True),
        max_redemptions=p.get("max_redemptions"),
        expires_at=p.get("expires_at"),
        customer=p.get("customer"),
        metadata=merge_metadata({}, p.get("metadata")),
    )
    promo["promotion"]["coupon"] = coupon_id
    promo["restrictions"]["currency_options"] = {}
    emu.store.add(promo)
    emu.emit("promotion_code.created", promo)
    return promo


@routes("GET", f"/v1/promotion_codes/{ID}")
def get_promotion_code(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    req.parse({})
    return emu.get("promotion_code", oid)


@routes("POST", f"/v1/promotion_codes/{ID}")
def update_promotion_code(emu: Emulator, req: Request, oid: str) -> dict[str, Any]:
    p = req.parse({"active": "bool", "metadata": "meta"})
    promo = emu.get("promotion_code", oid)
    before = copy.deepcopy(promo)
    if "active" in p:
        promo["active"] = p["active"]
    if "metadata" in p:
        promo["metadata"] = merge_metadata(promo["metadata"], p["metadata"])
    emu.emit("promotion_code.updated", promo, {k: before[k] for k in ("active", "metadata")})
    return promo


@routes("GET", "/v1/promotion_codes")
def list_promotion_codes(emu: Emulator, req: Request) -> dict[str, Any]:
    p = req.parse({**LIST_SPEC, "code": "str", "active": "bool", "coupon": "str"})
    items = emu.store.all("promotion_code")
    if "code" in p:
        items = [i for i in items if i["code"].lower() == p["code"].lower()]
    if "active" in p:
        items = [i for i in items if i["active"] == p["active"]]
    if "coupon" in p:
        items = [i for i in items if i["promotion"]["coupon"] == p["coupon"]]
    return paginate(items, p, "/v1/promotion_codes")


# --- applying them ------------------------------------------------------------------------
def resolve(
    emu: Emulator, spec: dict[str, str], param: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(coupon, promotion code or None) for a ``discounts[]`` entry; checks they can be used."""
    if "promotion_code" in spec:
        promo = emu.get("promotion_code", spec["promotion_code"], f"{param}[promotion_code]")
        check_promotion_code(emu, promo, param)
        return emu.get("coupon", promo["promotion"]["coupon"]), promo
    if "coupon" in spec:
        coupon = emu.get("coupon", spec["coupon"], f"{param}[coupon]")
        _redeemable(emu, coupon, f"{param}[coupon]")
        return coupon, None
    raise missing(f"{param}[coupon]")


def check_promotion_code(emu: Emulator, promo: dict[str, Any], param: str) -> None:
    full = (
        promo["max_redemptions"] is not None and promo["times_redeemed"] >= promo["max_redemptions"]
    )
    expired = promo["expires_at"] is not None and promo["expires_at"] < emu.now()
    if not promo["active"] or full or expired:
        raise invalid(param, "This promotion code cannot be redeemed.", "promotion_code_invalid")
    _redeemable(emu, emu.get("coupon", promo["promotion"]["coupon"]), param)


def by_code(emu: Emulator, code: str) -> dict[str, Any]:
    for promo in emu.store.all("promotion_code"):
        if promo["code"].lower() == code.strip().lower() and promo["active"]:
            check_promotion_code(emu, promo, "promotion_code")
            return promo
    raise invalid("promotion_code", f"Unknown promotion code: {code}", "promotion_code_invalid")


def amount_off(coupon: dict[str, Any], amount: int) -> int:
    """What ``coupon`` takes off ``amount`` (cents)."""
    if coupon["percent_off"] is not None:
        return min(amount, round(amount * float(coupon["percent_off"]) / 100))
    return min(amount, coupon["amount_off"] or 0)


def redeem(emu: Emulator, coupon: dict[str, Any], promo: dict[str, Any] | None) -> None:
    coupon["times_redeemed"] += 1
    if (
        coupon["max_redemptions"] is not None
        and coupon["times_redeemed"] >= coupon["max_redemptions"]
    ):
        coupon["valid"] = False
    if promo is not None:
        promo["times_redeemed"] += 1


def subscription_discount(
    emu: Emulator,
    sub: dict[str, Any],
    coupon: dict[str, Any],
    promo: dict[str, Any] | None,
    session_id: str | None,
) -> dict[str, Any]:
    """The discount object a subscription carries (``sub["discounts"]``)."""
    at = sub["created"]
    end = None
    if coupon["duration"] == "repeating":
        end = add_interval(at, "month", coupon["duration_in_months"])
    discount = objects.new(
        "discount",
        id=emu.new_id("di_"),
        start=at,
        end=end,
        customer=sub["customer"],
        subscription=sub["id"],
        checkout_session=session_id,
        promotion_code=promo["id"] if promo else None,
    )
    discount["source"]["coupon"] = coupon["id"]
    emu.store.add(discount)
    emu.store.note(discount["id"])["once"] = coupon["duration"] == "once"
    sub["discounts"] = [discount["id"]]
    return discount


def invoice_discounts(emu: Emulator, sub: dict[str, Any], inv: dict[str, Any]) -> None:
    """Apply the subscription's live discounts to a draft invoice's subscription lines."""
    for discount_id in list(sub.get("discounts") or []):
        discount = emu.store.get(discount_id, "discount")
        if discount is None:
            continue
        note = emu.store.note(discount_id)
        at = inv["created"]
        if (discount["end"] is not None and discount["end"] <= at) or note.get("used_once"):
            sub["discounts"] = [d for d in sub["discounts"] if d != discount_id]
            continue
        coupon = emu.store.objects.get(discount["source"]["coupon"]) or {}
        lines = [line for line in inv["lines"]["data"] if line["amount"] > 0]
        total_off = amount_off(coupon, sum(line["amount"] for line in lines)) if lines else 0
        left = total_off
        for line in lines:  # the discount sits on the lines it reduces, in order
            off = min(left, line["amount"])
            if off:
                line["discount_amounts"] = [{"amount": off, "discount": discount_id}]
                line["discounts"] = [discount_id]
                left -= off
        if total_off:
            inv["discounts"] = [discount_id]
            inv["total_discount_amounts"] = [{"amount": total_off, "discount": discount_id}]
            inv["total"] -= total_off
            inv["total_excluding_tax"] = inv["total"]
            inv["amount_due"] = inv["amount_remaining"] = max(inv["total"], 0)
        if note.get("once"):
            note["used_once"] = True
