"""Contract: everything the emulator returns or emits matches the installed stripe-python.

A full scenario runs through the SDK; every 200 response body, every nested object in it, every
event payload and every stored object passes ``shape_check`` (unknown fields, missing fields,
wrong types, Literal values), and every event type is in ``stripe.Event``'s type Literal. Upgrading
stripe-python re-runs this against the new annotations.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

from stripe_emulator import Emulator, shape_check
from stripe_emulator.client import EmulatorHTTPClient

from .tests_helpers import KEY, SECRET, START, FakeClock, Sink, subscribe

# The top-level field names of Stripe's own example objects (stripe/openapi fixtures3.json),
# kept in our tree so a fresh clone runs this test; refresh it from a newer fixtures3.json with
# {kind: sorted(example) for kind, example in fixtures["resources"].items()}.
EXAMPLE_FIELDS = Path(__file__).resolve().parent / "data" / "stripe_example_fields.json"
LEGACY_FIELDS = {
    "subscription": {"current_period_start", "current_period_end", "plan", "quantity"},
    "invoice": {"subscription", "charge", "payment_intent", "paid"},
    "charge": {"invoice"},
    "line_item": {"subscription_item", "plan", "price", "proration"},
}


class RecordingClient(EmulatorHTTPClient):
    def __init__(self, emulator):
        super().__init__(emulator)
        self.bodies: list[dict[str, Any]] = []

    def request(self, method, url, headers, post_data=None, *args, **kwargs):
        body, status, resp_headers = super().request(method, url, headers, post_data)
        if status == 200:
            self.bodies.append(json.loads(body))
        return body, status, resp_headers


def walk_objects(value: Any):
    """Every dict with an ``object`` field (top-level or nested, expanded or listed)."""
    if isinstance(value, dict):
        if isinstance(value.get("object"), str):
            yield value
        for item in value.values():
            yield from walk_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_objects(item)


def run_full_scenario(emu) -> RecordingClient:
    rec = RecordingClient(emu)
    client = stripe.StripeClient(KEY, http_client=rec, max_network_retries=0)
    client.v1.accounts.retrieve_current()
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["invoice.paid"]}
    )
    client.v1.webhook_endpoints.list()
    client.v1.webhook_endpoints.delete(endpoint.id)
    prices = {}
    for name, amount, interval in (("Basic", 1000, "month"), ("Pro", 3000, "month")):
        prod = client.v1.products.create(params={"name": name, "metadata": {"tier": name}})
        prices[name] = client.v1.prices.create(
            params={
                "product": prod.id,
                "unit_amount": amount,
                "currency": "usd",
                "recurring": {"interval": interval},
                "lookup_key": name.lower(),
            }
        )
    one_off = client.v1.prices.create(
        params={"product_data": {"name": "Credits"}, "unit_amount": 500, "currency": "usd"}
    )
    client.v1.prices.list(params={"expand": ["data.product"], "lookup_keys": ["basic"]})
    client.v1.products.list()
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})
    cus = client.v1.customers.create(
        params={"email": "k@x.io", "test_clock": clock.id, "metadata": {"djstripe_subscriber": "1"}}
    )
    client.v1.customers.retrieve(cus.id, params={"expand": ["default_source", "sources"]})
    client.v1.customers.list(params={"email": "k@x.io"})
    session, sub = subscribe(
        client,
        emu,
        prices["Basic"].id,
        customer=cus.id,
        metadata={"uid": "1"},
        subscription_data={"metadata": {"a": "b"}},
    )
    client.v1.checkout.sessions.retrieve(
        session.id,
        params={
            "expand": [
                "line_items",
                "total_details.breakdown",
                "line_items.data.discounts",
                "line_items.data.price.product",
            ]
        },
    )
    client.v1.checkout.sessions.line_items.list(session.id)
    client.v1.checkout.sessions.list()
    client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": sub["items"].data[0].id, "price": prices["Pro"].id}]},
    )
    # a downgrade scheduled for the period end, then a portal configuration of ours
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "end_behavior": "release",
            "phases": [
                {
                    "items": [{"price": prices["Pro"].id, "quantity": 1}],
                    "start_date": schedule.phases[0].start_date,
                    "end_date": schedule.phases[0].end_date,
                },
                {
                    "items": [{"price": prices["Basic"].id, "quantity": 1}],
                    "duration": {"interval": "month", "interval_count": 1},
                },
            ],
        },
    )
    client.v1.subscription_schedules.retrieve(schedule.id)
    config = client.v1.billing_portal.configurations.create(
        params={
            "features": {
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price"],
                    "proration_behavior": "always_invoice",
                    "products": [
                        {"product": prices["Pro"].product, "prices": [prices["Pro"].id]},
                        {"product": prices["Basic"].product, "prices": [prices["Basic"].id]},
                    ],
                    "schedule_at_period_end": {
                        "conditions": [
                            {"type": "decreasing_item_amount"},
                            {"type": "shortening_interval"},
                        ]
                    },
                },
                "invoice_history": {"enabled": True},
            },
            "metadata": {"ours": "1"},
        }
    )
    client.v1.billing_portal.configurations.list()
    client.v1.billing_portal.sessions.create(
        params={"customer": cus.id, "configuration": config.id}
    )
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": START + 32 * 86400})
    # an upgrade whose charge fails becomes a pending update
    client.v1.subscription_schedules.list(params={"customer": cus.id})
    portal = client.v1.billing_portal.sessions.create(params={"customer": cus.id})
    emu.handle("POST", f"/portal/{portal.id}", {}, b"action=card&card_number=4000000000000341")
    current = client.v1.subscriptions.retrieve(sub.id)
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": current["items"].data[0].id, "price": prices["Pro"].id}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        },
    )
    client.v1.subscriptions.retrieve(sub.id)
    emu.handle("POST", f"/portal/{portal.id}", {}, b"action=card&card_number=4000000000000341")
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": START + 75 * 86400})
    client.v1.subscriptions.list(params={"customer": cus.id, "status": "all"})
    invoices = client.v1.invoices.list(
        params={"customer": cus.id, "expand": ["data.payments", "data.lines.data.discounts"]}
    )
    for inv in invoices.data:
        client.v1.invoices.retrieve(inv.id, params={"expand": ["discounts", "payments"]})
        client.v1.invoices.line_items.list(inv.id)
    client.v1.invoice_items.list(params={"customer": cus.id})
    client.v1.invoice_payments.list(params={"invoice": invoices.data[-1].id})
    client.v1.subscription_items.list(params={"subscription": sub.id})
    # payment mode + refund
    pay = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer_creation": "always",
            "line_items": [{"price": one_off.id, "quantity": 2}],
            "success_url": "http://127.0.0.1/ok",
        }
    )
    emu.complete_checkout(pay.id)
    pay = client.v1.checkout.sessions.retrieve(pay.id, params={"expand": ["payment_intent"]})
    client.v1.charges.retrieve(
        pay.payment_intent.latest_charge, params={"expand": ["balance_transaction"]}
    )
    client.v1.refunds.create(params={"payment_intent": pay.payment_intent.id, "amount": 100})
    client.v1.refunds.list()
    client.v1.payment_methods.list(params={"customer": cus.id, "type": "card"})
    # another subscription: cancel at period end, then immediate cancel
    _, other = subscribe(client, emu, prices["Pro"].id)
    client.v1.subscriptions.update(other.id, params={"cancel_at_period_end": True})
    client.v1.subscriptions.cancel(other.id)
    client.v1.customers.delete(other.customer)
    client.v1.customers.retrieve(other.customer)
    client.v1.prices.retrieve(
        prices["Pro"].id, params={"expand": ["currency_options", "product", "tiers"]}
    )
    client.v1.accounts.retrieve("acct_emulator")
    expired = client.v1.checkout.sessions.create(
        params={"mode": "payment", "line_items": [{"price": one_off.id}], "success_url": "x"}
    )
    client.v1.checkout.sessions.expire(expired.id)
    # disputes (a chargeback won, an inquiry), a refund that fails later, bank debits
    for card, evidence in (("4000000000000259", "winning_evidence"), ("4000000000001976", "")):
        paid = client.v1.checkout.sessions.create(
            params={"mode": "payment", "line_items": [{"price": one_off.id}], "success_url": "x"}
        )
        emu.complete_checkout(paid.id, card=card)
        paid = client.v1.checkout.sessions.retrieve(paid.id, params={"expand": ["payment_intent"]})
        [dispute] = client.v1.disputes.list(params={"payment_intent": paid.payment_intent.id}).data
        if evidence:
            client.v1.disputes.update(
                dispute.id, params={"evidence": {"uncategorized_text": evidence}}
            )
        else:
            client.v1.disputes.close(dispute.id)
        client.v1.disputes.retrieve(dispute.id)
    failing = client.v1.checkout.sessions.create(
        params={"mode": "payment", "line_items": [{"price": one_off.id}], "success_url": "x"}
    )
    emu.complete_checkout(failing.id, card="4000000000005126")
    failing = client.v1.checkout.sessions.retrieve(failing.id)
    client.v1.refunds.create(params={"payment_intent": failing.payment_intent})
    for account in ("000123456789", "000111111116"):
        debit = client.v1.checkout.sessions.create(
            params={"mode": "payment", "line_items": [{"price": one_off.id}], "success_url": "x"}
        )
        emu.complete_checkout(debit.id, bank_account=account)
    # coupons, promotion codes, a discounted bundle and a discounted subscription
    half = client.v1.coupons.create(params={"percent_off": "50", "duration": "forever"})
    promo = client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": half.id}, "code": "HALF"}
    )
    client.v1.coupons.list()
    client.v1.promotion_codes.list(params={"code": "HALF"})
    client.v1.promotion_codes.retrieve(promo.id)
    cheap = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price": one_off.id}],
            "success_url": "x",
            "discounts": [{"promotion_code": promo.id}],
        }
    )
    emu.complete_checkout(cheap.id)
    client.v1.checkout.sessions.retrieve(cheap.id, params={"expand": ["total_details.breakdown"]})
    _, discounted = subscribe(client, emu, prices["Pro"].id, discounts=[{"coupon": half.id}])
    client.v1.invoices.retrieve(
        discounted.latest_invoice, params={"expand": ["discounts", "lines.data.discounts"]}
    )
    client.v1.subscriptions.retrieve(discounted.id, params={"expand": ["discounts"]})
    # billing reasons beyond renewals: a manual invoice and a threshold invoice
    client.v1.invoice_items.create(
        params={"customer": discounted.customer, "price": one_off.id, "subscription": discounted.id}
    )
    manual = client.v1.invoices.create(
        params={"customer": discounted.customer, "pending_invoice_items_behavior": "exclude"}
    )
    client.v1.invoices.finalize_invoice(manual.id)
    client.v1.invoice_items.create(params={"customer": discounted.customer, "price": one_off.id})
    emu.handle("POST", f"/_emulator/subscriptions/{discounted.id}/threshold_invoice", {}, b"")
    # 3-D Secure: a renewal that needs the customer, confirmed on the page
    _, sca = subscribe(client, emu, prices["Basic"].id, card="4000002760003184")
    emu.advance_clock(32 * 86400)
    waiting = client.v1.payment_intents.list(params={"customer": sca.customer}).data[0]
    client.v1.payment_intents.retrieve(waiting.id)
    emu.handle("POST", f"/authenticate/{waiting.id}", {}, b"outcome=complete")
    emu.advance_clock(5 * 86400)
    # what a billing page and auto top-up call: previews, tax ids, off-session payments, receipts
    item = discounted["items"].data[0]
    client.v1.invoices.create_preview(params={"subscription": discounted.id})
    client.v1.invoices.create_preview(
        params={
            "subscription": discounted.id,
            "subscription_details": {
                "items": [{"id": item.id, "price": prices["Basic"].id}],
                "proration_behavior": "always_invoice",
            },
        }
    )
    tax_id = client.v1.customers.tax_ids.create(
        discounted.customer, params={"type": "eu_vat", "value": "FR000000000"}
    )
    client.v1.customers.retrieve(
        discounted.customer,
        params={"expand": ["tax_ids", "invoice_settings.default_payment_method"]},
    )
    client.v1.customers.tax_ids.delete(discounted.customer, tax_id.id)
    saved = client.v1.payment_methods.attach(
        "pm_card_chargeDeclined", params={"customer": discounted.customer}
    )
    for pm in ("pm_card_visa", saved.id):
        with contextlib.suppress(stripe.CardError):
            client.v1.payment_intents.create(
                params={
                    "amount": 500,
                    "currency": "usd",
                    "customer": discounted.customer,
                    "payment_method": pm,
                    "off_session": True,
                    "confirm": True,
                }
            )
    receipt = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": discounted.customer,
            "line_items": [{"price": one_off.id, "quantity": 1}],
            "success_url": "http://127.0.0.1/ok",
            "invoice_creation": {"enabled": True},
        }
    )
    emu.complete_checkout(receipt.id)
    client.v1.checkout.sessions.retrieve(receipt.id, params={"expand": ["invoice"]})
    client.v1.payment_intents.list()
    client.v1.charges.list(params={"expand": ["data.refunds"]})
    client.v1.events.list(params={"limit": 100})
    client.v1.test_helpers.test_clocks.delete(clock.id)
    return rec


@pytest.fixture(scope="module")
def scenario() -> Iterator[tuple[RecordingClient, Sink, Emulator]]:
    """The full scenario, played once for the module (2.5 s a play): its tests only read what
    it recorded, delivered and stored."""
    emu = Emulator(clock=FakeClock())
    sink = Sink()
    emu.add_webhook_endpoint(sink, SECRET, ["*"])
    try:
        yield run_full_scenario(emu), sink, emu
    finally:
        emu.close()


def test_every_response_and_nested_object_matches_the_sdk(scenario):
    rec, _, _ = scenario
    problems = []
    seen_types = set()
    for body in rec.bodies:
        for obj in walk_objects(body):
            seen_types.add(obj["object"])
            problems += [f"{obj['object']} {obj.get('id')}: {p}" for p in shape_check.check(obj)]
    assert problems == []
    expected = {
        "account", "customer", "product", "price", "checkout.session", "item", "subscription",
        "subscription_item", "invoice", "line_item", "invoiceitem", "invoice_payment",
        "payment_intent", "charge", "balance_transaction", "payment_method", "refund",
        "billing_portal.session", "event", "webhook_endpoint", "test_helpers.test_clock", "list",
        "plan", "dispute", "coupon", "promotion_code", "discount",
        "subscription_schedule", "billing_portal.configuration",
    }  # fmt: skip
    assert expected <= seen_types


def test_every_event_payload_and_type_matches_the_sdk(scenario):
    _, sink, emu = scenario
    allowed = shape_check.event_types()
    events = emu.events()
    assert len(events) > 80 and len(sink.events) == len(events)
    problems = []
    for event in events:
        assert event["type"] in allowed, event["type"]
        problems += [f"{event['type']}: {p}" for p in shape_check.check(event)]
        problems += [
            f"{event['type']} data.object: {p}" for p in shape_check.check(event["data"]["object"])
        ]
        if event["type"].endswith(".updated"):
            assert event["data"]["previous_attributes"], event["type"]
    assert problems == []
    types = {e["type"] for e in events}
    for needed in (
        "customer.subscription.deleted", "invoice.payment_failed", "charge.failed",
        "invoiceitem.created", "refund.created", "charge.refunded", "checkout.session.expired",
        "test_helpers.test_clock.ready", "billing_portal.session.created", "customer.deleted",
    ):  # fmt: skip
        assert needed in types


def test_every_stored_object_matches_the_sdk(scenario):
    _, _, emu = scenario
    problems = []
    for obj in emu.store.objects.values():
        problems += [f"{obj['object']} {obj['id']}: {p}" for p in shape_check.check(obj)]
    assert problems == []


def test_no_legacy_fields_are_emitted(scenario):
    _, _, emu = scenario
    for obj in walk_objects(emu.store.to_json()["objects"]):
        legacy = LEGACY_FIELDS.get(obj["object"], set()) & set(obj)
        assert not legacy, (obj["object"], legacy)


def test_top_level_fields_cover_stripes_own_examples(scenario):
    """Every field in Stripe's example object that the SDK still declares is emitted too."""
    _, _, emu = scenario
    examples = json.loads(EXAMPLE_FIELDS.read_text())["fields"]
    checked = 0
    for kind in {o["object"] for o in emu.store.objects.values()}:
        example = examples.get(kind)
        cls = shape_check.class_for(kind)
        if not example or cls is None:
            continue
        declared = set(getattr(cls, "__annotations__", {}))
        ours = next(o for o in emu.store.objects.values() if o["object"] == kind)
        missing = (set(example) & declared) - set(ours) - shape_check.INCLUDABLE.get(kind, set())
        assert not missing, (kind, missing)
        checked += 1
    assert checked >= 15


# --- the checker itself ------------------------------------------------------------------
def test_shape_check_catches_problems():
    good = {
        "id": "clock_1",
        "object": "test_helpers.test_clock",
        "created": 1,
        "deletes_after": 2,
        "frozen_time": 3,
        "livemode": False,
        "name": None,
        "status": "ready",
        "status_details": {"advancing": None},
    }
    assert shape_check.check(good) == []
    assert any("unknown field" in p for p in shape_check.check({**good, "extra": 1}))
    assert any("missing field" in p for p in shape_check.check(
        {k: v for k, v in good.items() if k != "frozen_time"}))  # fmt: skip
    assert any("expected int" in p for p in shape_check.check({**good, "created": "1"}))
    assert any("not in" in p for p in shape_check.check({**good, "deleted": False}))
    assert shape_check.check({**good, "status": "sleeping"}) == []  # Union[Literal, str]
    assert any("null but not Optional" in p for p in shape_check.check({**good, "livemode": None}))
    assert shape_check.check({"id": "we_1", "object": "webhook_endpoint", "deleted": True}) == []
    assert shape_check.check({"object": "nonsense"}) == ["unknown object type 'nonsense'"]
    assert "invoice.paid" in shape_check.event_types()
