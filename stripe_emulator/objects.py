"""One builder per API object type, in the shapes of API version 2026-08-26.dahlia.

Every builder starts from the generated skeleton (every field the SDK declares, null or a
neutral default) and fills in what the emulator knows. Legacy fields removed by Stripe
(``subscription.current_period_*``, ``invoice.subscription``, ``charge.invoice``, ...) are not
in the skeletons, so they can never be emitted.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from ._skeletons import API_VERSION, SKELETONS

__all__ = ["API_VERSION", "json_copy", "new", "list_object"]

T = TypeVar("T")

CARD_BRANDS = {"4": "visa", "5": "mastercard", "3": "amex", "6": "discover"}


def json_copy(value: T) -> T:
    """A deep copy of JSON-shaped data (what the state holds: it is saved as JSON).

    ``copy.deepcopy`` keeps a memo for shared and cyclic references that JSON cannot have;
    without it a copy takes less than half the time (65 against 150 us for an invoice, its
    subscription and a session), and every answer and event is one.
    """
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [json_copy(item) for item in value]  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(json_copy(item) for item in value)  # type: ignore[return-value]
    return value  # str, int, float, bool, None: immutable


def new(kind: str, **fields: Any) -> dict[str, Any]:
    """A fresh copy of the skeleton for ``kind`` with ``fields`` set (unknown fields refused)."""
    obj = json_copy(SKELETONS[kind])
    for key, value in fields.items():
        if key not in obj:
            raise KeyError(f"{kind} has no field {key!r}")
        obj[key] = value
    return obj  # type: ignore[no-any-return]  # a copy of the skeleton dict


def list_object(url: str, data: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def account(display_name: str) -> dict[str, Any]:
    obj = new(
        "account",
        id="acct_emulator",
        business_type="company",
        charges_enabled=True,
        payouts_enabled=True,
        details_submitted=True,
        country="US",
        default_currency="usd",
        email="billing@example.invalid",
        created=1700000000,
        type="standard",
        metadata={},
    )
    obj["settings"] = settings = new("account.settings")
    settings["dashboard"] = new(
        "account.settings.dashboard", display_name=display_name, timezone="Etc/UTC"
    )
    settings["branding"] = new("account.settings.branding")
    obj["business_profile"] = None
    return obj


def customer(
    cid: str,
    created: int,
    *,
    email: str | None,
    name: str | None,
    metadata: dict[str, Any],
    test_clock: str | None = None,
) -> dict[str, Any]:
    obj = new(
        "customer",
        id=cid,
        created=created,
        email=email,
        name=name,
        metadata=metadata,
        test_clock=test_clock,
        balance=0,
        delinquent=False,
        invoice_prefix=cid[4:12].upper(),
        next_invoice_sequence=1,
        preferred_locales=[],
        tax_exempt="none",
        currency=None,
    )
    obj["invoice_settings"] = new("customer.invoice_settings")
    return obj


def product(
    pid: str,
    created: int,
    *,
    name: str,
    metadata: dict[str, Any],
    active: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    return new(
        "product",
        id=pid,
        created=created,
        updated=created,
        name=name,
        metadata=metadata,
        active=active,
        images=[],
        marketing_features=[],
        package_dimensions=None,
        shippable=None,
        type="service",
        **extra,
    )


def price(
    pid: str,
    created: int,
    *,
    product: str,
    unit_amount: int,
    currency: str,
    recurring: dict[str, Any] | None,
    lookup_key: str | None,
    nickname: str | None,
    metadata: dict[str, Any],
    active: bool = True,
) -> dict[str, Any]:
    rec = None
    if recurring:
        rec = new(
            "price.recurring",
            interval=recurring["interval"],
            interval_count=recurring.get("interval_count", 1),
            usage_type="licensed",
        )
    return new(
        "price",
        id=pid,
        created=created,
        product=product,
        unit_amount=unit_amount,
        unit_amount_decimal=str(unit_amount),
        currency=currency,
        recurring=rec,
        type="recurring" if rec else "one_time",
        lookup_key=lookup_key,
        nickname=nickname,
        metadata=metadata,
        active=active,
        billing_scheme="per_unit",
        tax_behavior="unspecified",
    )


def plan_from(price_obj: dict[str, Any]) -> dict[str, Any]:
    """The legacy ``plan`` view of a recurring price, still embedded in subscription items."""
    rec = price_obj["recurring"] or {"interval": "month", "interval_count": 1}
    return new(
        "plan",
        id=price_obj["id"],
        active=price_obj["active"],
        amount=price_obj["unit_amount"],
        amount_decimal=price_obj["unit_amount_decimal"],
        billing_scheme="per_unit",
        created=price_obj["created"],
        currency=price_obj["currency"],
        interval=rec["interval"],
        interval_count=rec["interval_count"],
        metadata=price_obj["metadata"],
        nickname=price_obj["nickname"],
        product=price_obj["product"],
        usage_type="licensed",
    )


def checkout_line_item(
    lid: str, price_obj: dict[str, Any], quantity: int, description: str
) -> dict[str, Any]:
    amount = price_obj["unit_amount"] * quantity
    return new(
        "item",
        id=lid,
        price=copy.deepcopy(price_obj),
        quantity=quantity,
        currency=price_obj["currency"],
        description=description,
        amount_subtotal=amount,
        amount_total=amount,
        amount_discount=0,
        amount_tax=0,
        metadata={},
    )


def checkout_session(sid: str, created: int, **fields: Any) -> dict[str, Any]:
    obj = new(
        "checkout.session",
        id=sid,
        created=created,
        expires_at=created + 24 * 3600,
        status="open",
        payment_status="unpaid",
        payment_method_types=["card"],
        payment_method_options=None,
        billing_address_collection="auto",
        locale=None,
        ui_mode="hosted",
        **fields,
    )
    amount = fields.get("amount_total") or 0
    obj["total_details"] = new(
        "checkout.session.total_details", amount_discount=0, amount_shipping=0, amount_tax=0
    )
    obj["total_details"]["breakdown"] = {"discounts": [], "taxes": []}
    obj["amount_subtotal"] = amount
    return obj


def subscription(sid: str, created: int, **fields: Any) -> dict[str, Any]:
    obj = new(
        "subscription",
        id=sid,
        created=created,
        start_date=created,
        billing_cycle_anchor=created,
        collection_method="charge_automatically",
        cancellation_details=new("subscription.cancellation_details"),
        **fields,
    )
    obj["payment_settings"] = {
        "payment_method_options": None,
        "payment_method_types": None,
        "save_default_payment_method": "off",
    }
    obj["billing_mode"] = {"flexible": None, "type": "classic", "updated_at": None}
    obj["invoice_settings"]["issuer"] = {"account": None, "type": "self"}
    return obj


def subscription_item(
    iid: str,
    created: int,
    *,
    sub: str,
    price_obj: dict[str, Any],
    quantity: int,
    start: int,
    end: int,
) -> dict[str, Any]:
    return new(
        "subscription_item",
        id=iid,
        created=created,
        subscription=sub,
        price=copy.deepcopy(price_obj),
        plan=plan_from(price_obj),
        quantity=quantity,
        current_period_start=start,
        current_period_end=end,
        metadata={},
        tax_rates=[],
    )


def invoice(iid: str, created: int, **fields: Any) -> dict[str, Any]:
    obj = new(
        "invoice",
        id=iid,
        created=created,
        account_country="US",
        auto_advance=True,
        collection_method="charge_automatically",
        customer_tax_exempt="none",
        metadata={},
        status="draft",
        starting_balance=0,
        **fields,
    )
    obj["issuer"] = {"account": None, "type": "self"}
    return obj


def invoice_parent_for_subscription(sub: dict[str, Any]) -> dict[str, Any]:
    parent = new("invoice.parent", type="subscription_details")
    parent["subscription_details"] = new(
        "invoice.parent.subscription_details",
        subscription=sub["id"],
        metadata=copy.deepcopy(sub["metadata"]),
    )
    return parent


def invoice_line(
    lid: str,
    *,
    invoice_id: str,
    amount: int,
    currency: str,
    description: str,
    price_obj: dict[str, Any],
    quantity: int,
    start: int,
    end: int,
    sub_id: str | None,
    si_id: str | None,
    invoice_item: str | None = None,
    proration: bool = False,
) -> dict[str, Any]:
    parent = new("line_item.parent")
    # A subscription item's own invoice items (its prorations) are subscription item lines that
    # name the invoice item, as Stripe shows them; other invoice items are invoice item lines.
    if invoice_item and not si_id:
        parent["type"] = "invoice_item_details"
        parent["invoice_item_details"] = {
            "invoice_item": invoice_item,
            "proration": proration,
            "proration_details": None,
            "subscription": sub_id,
        }
    else:
        parent["type"] = "subscription_item_details"
        parent["subscription_item_details"] = new(
            "line_item.parent.subscription_item_details",
            subscription=sub_id,
            subscription_item=si_id,
            proration=proration,
            invoice_item=invoice_item,
        )
    pricing = new("line_item.pricing", type="price_details")
    pricing["price_details"] = new(
        "line_item.pricing.price_details", price=price_obj["id"], product=price_obj["product"]
    )
    pricing["unit_amount_decimal"] = price_obj["unit_amount_decimal"]
    return new(
        "line_item",
        id=lid,
        invoice=invoice_id,
        amount=amount,
        subtotal=amount,
        currency=currency,
        description=description,
        discountable=True,
        discount_amounts=[],
        quantity=quantity,
        period={"start": start, "end": end},
        parent=parent,
        pricing=pricing,
        metadata={},
        taxes=[],
        pretax_credit_amounts=[],
    )


def invoice_item(
    iid: str,
    created: int,
    *,
    customer: str,
    amount: int,
    currency: str,
    description: str,
    price_obj: dict[str, Any],
    start: int,
    end: int,
    sub_id: str | None,
    si_id: str | None,
    proration: bool,
    test_clock: str | None,
) -> dict[str, Any]:
    parent = None
    if sub_id:
        parent = new("invoiceitem.parent", type="subscription_details")
        parent["subscription_details"] = new(
            "invoiceitem.parent.subscription_details", subscription=sub_id, subscription_item=si_id
        )
    pricing = new("invoiceitem.pricing", type="price_details")
    pricing["price_details"] = new(
        "invoiceitem.pricing.price_details", price=price_obj["id"], product=price_obj["product"]
    )
    pricing["unit_amount_decimal"] = str(amount)
    return new(
        "invoiceitem",
        id=iid,
        date=created,
        customer=customer,
        amount=amount,
        net_amount=amount,
        currency=currency,
        description=description,
        discountable=not proration,
        discounts=[],
        metadata={},
        period={"start": start, "end": end},
        parent=parent,
        pricing=pricing,
        proration=proration,
        quantity=1,
        quantity_decimal="1",
        tax_rates=[],
        test_clock=test_clock,
    )


def invoice_payment(
    pid: str, created: int, *, invoice_id: str, pi: dict[str, Any]
) -> dict[str, Any]:
    obj = new(
        "invoice_payment",
        id=pid,
        created=created,
        invoice=invoice_id,
        amount_requested=pi["amount"],
        amount_paid=None,
        currency=pi["currency"],
        is_default=True,
        status="open",
    )
    obj["payment"] = {
        "charge": None,
        "payment_intent": pi["id"],
        "payment_record": None,
        "type": "payment_intent",
    }
    return obj


def payment_intent(pid: str, created: int, **fields: Any) -> dict[str, Any]:
    defaults = {
        "client_secret": f"{pid}_secret_emulator",
        "capture_method": "automatic_async",
        "confirmation_method": "automatic",
        "payment_method_types": ["card"],
        "status": "requires_payment_method",
    }
    return new("payment_intent", id=pid, created=created, **{**defaults, **fields})


def card_details(number: str, exp_month: int, exp_year: int) -> dict[str, Any]:
    return new(
        "payment_method.card",
        brand=CARD_BRANDS.get(number[:1], "visa"),
        display_brand=CARD_BRANDS.get(number[:1], "visa"),
        last4=number[-4:],
        exp_month=exp_month,
        exp_year=exp_year,
        funding="credit",
        country="US",
        fingerprint="fp" + number[-8:],
        regulated_status="unregulated",
    )


def payment_method(
    pid: str, created: int, *, number: str, exp_month: int, exp_year: int, customer: str | None
) -> dict[str, Any]:
    return new(
        "payment_method",
        id=pid,
        created=created,
        type="card",
        card=card_details(number, exp_month, exp_year),
        customer=customer,
        metadata={},
        allow_redisplay="unspecified",
    )


def charge(
    cid: str,
    created: int,
    *,
    pi: dict[str, Any],
    pm: dict[str, Any] | None,
    ok: bool,
    **fields: Any,
) -> dict[str, Any]:
    card = (pm or {}).get("card") or {}
    pmd = new("charge.payment_method_details", type="card")
    pmd["card"] = new(
        "charge.payment_method_details.card",
        brand=card.get("brand"),
        last4=card.get("last4"),
        exp_month=card.get("exp_month", 12),
        exp_year=card.get("exp_year", 2030),
        funding=card.get("funding"),
        country=card.get("country"),
        network="visa",
        regulated_status="unregulated",
    )
    outcome = new(
        "charge.outcome",
        type="authorized" if ok else "issuer_declined",
        network_status="approved_by_network" if ok else "declined_by_network",
        seller_message="Payment complete."
        if ok
        else "The bank did not return any further details.",
        risk_level="normal",
        risk_score=20,
        reason=None if ok else "generic_decline",
    )
    return new(
        "charge",
        id=cid,
        created=created,
        amount=pi["amount"],
        amount_captured=pi["amount"] if ok else 0,
        currency=pi["currency"],
        customer=pi["customer"],
        description=pi["description"],
        captured=ok,
        paid=ok,
        status="succeeded" if ok else "failed",
        failure_code=None if ok else "card_declined",
        failure_message=None if ok else "Your card was declined.",
        payment_intent=pi["id"],
        payment_method=(pm or {}).get("id"),
        payment_method_details=pmd,
        outcome=outcome,
        metadata=dict(pi["metadata"]),
        fraud_details={"stripe_report": None, "user_report": None},
        refunded=False,
        amount_refunded=0,
        receipt_url=f"https://pay.stripe.com/receipts/emulator/{cid}",
        **fields,
    )


def balance_transaction(
    tid: str, created: int, *, amount: int, currency: str, source: str, kind: str
) -> dict[str, Any]:
    fee = 0 if kind != "charge" else round(amount * 0.029) + 30
    return new(
        "balance_transaction",
        id=tid,
        created=created,
        available_on=created + 2 * 86400,
        amount=amount,
        currency=currency,
        fee=fee,
        fee_details=(
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Stripe processing fees",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        ),
        net=amount - fee,
        reporting_category="charge" if kind == "charge" else "refund",
        source=source,
        status="pending",
        type=kind,
        balance_type="payments",
        exchange_rate=None,
        description=None,
    )


def refund(rid: str, created: int, **fields: Any) -> dict[str, Any]:
    return new("refund", id=rid, created=created, status="succeeded", metadata={}, **fields)


def portal_session(
    bid: str,
    created: int,
    *,
    customer: str,
    return_url: str | None,
    url: str,
    configuration: str,
) -> dict[str, Any]:
    return new(
        "billing_portal.session",
        id=bid,
        created=created,
        customer=customer,
        return_url=return_url,
        url=url,
        configuration=configuration,
        locale=None,
    )


def event(
    eid: str,
    created: int,
    *,
    type: str,  # noqa: A002
    obj: dict[str, Any],
    previous: dict[str, Any] | None,
    request: dict[str, Any],
    pending_webhooks: int,
    api_version: str = API_VERSION,
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    else:
        data["previous_attributes"] = None
    return new(
        "event",
        id=eid,
        created=created,
        type=type,
        data=data,
        api_version=api_version,
        request=request,
        pending_webhooks=pending_webhooks,
        livemode=False,
    )


def webhook_endpoint(
    wid: str, created: int, *, url: str, events: list[str], api_version: str | None
) -> dict[str, Any]:
    return new(
        "webhook_endpoint",
        id=wid,
        created=created,
        url=url,
        enabled_events=events,
        api_version=api_version,
        status="enabled",
        metadata={},
        description=None,
    )


def test_clock(cid: str, created: int, *, frozen_time: int, name: str | None) -> dict[str, Any]:
    return new(
        "test_helpers.test_clock",
        id=cid,
        created=created,
        frozen_time=frozen_time,
        name=name,
        status="ready",
        deletes_after=created + 30 * 86400,
    )
