"""Checkout Sessions through stripe-python: creation, expansion, completion, event sequences,
the hosted page."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import stripe

from stripe_emulator import StripeError as EmulatorError

from .tests_helpers import START, subscribe


def test_create_session_shape_and_line_items_only_when_expanded(client, catalog):
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer_email": "ann@example.com",
            "line_items": [{"price": catalog["pro_monthly"].id, "quantity": 1}],
            "success_url": "http://127.0.0.1:8000/ok?cs={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://127.0.0.1:8000/no",
            "client_reference_id": "user-7",
            "metadata": {"uid": "7"},
            "subscription_data": {"metadata": {"plan": "pro"}},
            "allow_promotion_codes": True,
        }
    )
    assert session.id.startswith("cs_test_")
    assert session.status == "open" and session.payment_status == "unpaid"
    assert session.url.endswith(f"/checkout/{session.id}")
    assert session.expires_at == START + 24 * 3600
    assert session.metadata.to_dict() == {"uid": "7"}
    assert "line_items" not in session.to_dict()
    expanded = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["line_items", "line_items.data.price.product"]}
    )
    items = expanded.line_items
    assert items.url == f"/v1/checkout/sessions/{session.id}/line_items"
    assert items.data[0].price.product.name == "HRVSTR Pro"
    assert items.data[0].amount_total == 3000
    listed = client.v1.checkout.sessions.line_items.list(session.id)
    assert [i.id for i in listed.data] == [i.id for i in items.data]


def test_subscription_checkout_event_sequence(client, emu, catalog, sink):
    session, sub = subscribe(client, emu, catalog["pro_monthly"].id, client_reference_id="u1")
    assert session.status == "complete" and session.payment_status == "paid"
    assert session.customer and session.subscription and session.invoice
    assert sub.status == "active"
    item = sub["items"].data[0]
    assert item.current_period_start == START
    assert item.current_period_end == 1_769_904_000  # 2026-02-01
    raw = sub.to_dict()
    assert raw["default_tax_rates"] == []  # dj-stripe iterates it; null crashed its sync
    for legacy in ("current_period_start", "current_period_end", "plan", "quantity"):
        assert legacy not in raw
    assert sink.types == [
        "customer.created",
        "payment_method.attached",
        "customer.updated",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.updated",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice_payment.paid",
        "customer.subscription.updated",
        "checkout.session.completed",
    ]
    created = sink.of_type("customer.subscription.created")[0]["data"]["object"]
    assert created["status"] == "incomplete"
    updated = sink.of_type("customer.subscription.updated")[0]["data"]
    assert updated["previous_attributes"] == {"status": "incomplete"}
    completed = sink.of_type("checkout.session.completed")[0]["data"]["object"]
    assert completed["client_reference_id"] == "u1"
    inv = client.v1.invoices.retrieve(session.invoice)
    assert inv.status == "paid" and inv.billing_reason == "subscription_create"
    assert inv.parent.subscription_details.subscription == sub.id
    assert "subscription" not in inv.to_dict()
    assert inv.hosted_invoice_url and inv.invoice_pdf
    for event in sink.events:
        assert event["request"]["id"] is None or event["request"]["id"].startswith("req_")


def test_payment_mode_checkout(client, emu, catalog, sink):
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price": catalog["credits"].id, "quantity": 3}],
            "success_url": "http://127.0.0.1:8000/ok",
            "customer_email": "bob@example.com",
            "payment_intent_data": {"metadata": {"bundle": "3"}},
        }
    )
    assert session.amount_total == 1500
    emu.complete_checkout(session.id)
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert done.payment_status == "paid" and done.customer is None
    assert done.customer_details.email == "bob@example.com"
    assert done.payment_intent.status == "succeeded"
    assert done.payment_intent.metadata.to_dict() == {"bundle": "3"}
    assert sink.types == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]


def test_payment_mode_customer_creation_always(client, emu, catalog, sink):
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer_creation": "always",
            "line_items": [{"price": catalog["credits"].id}],
            "success_url": "http://127.0.0.1:8000/ok",
        }
    )
    emu.complete_checkout(session.id)
    assert client.v1.checkout.sessions.retrieve(session.id).customer.startswith("cus_")
    assert sink.types[0] == "customer.created"


def test_existing_customer_and_declined_card(client, emu, catalog, sink):
    cus = client.v1.customers.create(params={"email": "c@example.com"})
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": cus.id,
            "line_items": [{"price": catalog["pro_monthly"].id}],
            "success_url": "http://127.0.0.1:8000/ok",
        }
    )
    with pytest.raises(EmulatorError) as info:
        emu.complete_checkout(session.id, card="4000000000000002")
    assert info.value.status == 402 and info.value.code == "card_declined"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    emu.complete_checkout(session.id, card="4242 4242 4242 4242")
    assert client.v1.checkout.sessions.retrieve(session.id).customer == cus.id
    assert "customer.created" not in sink.types[1:]


def test_expire_and_list(client, catalog, sink):
    params = {
        "mode": "payment",
        "line_items": [{"price": catalog["credits"].id}],
        "success_url": "http://127.0.0.1:8000/ok",
    }
    first = client.v1.checkout.sessions.create(params=params)
    second = client.v1.checkout.sessions.create(params=params)
    expired = client.v1.checkout.sessions.expire(first.id)
    assert expired.status == "expired"
    assert sink.types == ["checkout.session.expired"]
    listed = client.v1.checkout.sessions.list(params={"limit": 1})
    assert [s.id for s in listed.data] == [second.id] and listed.has_more
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(first.id)


def test_session_parameter_errors(client, catalog):
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(
            params={"mode": "subscription", "success_url": "http://127.0.0.1/x"}
        )
    assert info.value.code == "parameter_missing" and info.value.param == "line_items"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "success_url": "http://127.0.0.1/x",
                "line_items": [{"price": catalog["credits"].id}],
            }
        )
    assert info.value.param == "line_items[0][price]"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(
            params={"mode": "payment", "success_url": "x", "bogus": "1"}
        )
    assert info.value.code == "parameter_unknown" and info.value.param == "bogus"


# --- the hosted page ---------------------------------------------------------------------
def _form(emu, path, **fields):
    body = urlencode(fields).encode()
    return emu.handle("POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, body)


def test_hosted_checkout_page_success_redirect(client, emu, catalog, sink):
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer_email": "page@example.com",
            "line_items": [{"price": catalog["pro_monthly"].id}],
            "success_url": "http://127.0.0.1:8000/ok?cs={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://127.0.0.1:8000/cancel",
        }
    )
    page = emu.handle("GET", f"/checkout/{session.id}")
    html = page.body.decode()
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    assert "HRVSTR Pro" in html and "30.00 USD" in html
    assert 'name="card_number"' in html and "http://127.0.0.1:8000/cancel" in html
    resp = _form(
        emu, f"/checkout/{session.id}", card_number="4242 4242 4242 4242", exp="12/34", cvc="123"
    )
    assert resp.status == 303
    assert resp.headers["Location"] == f"http://127.0.0.1:8000/ok?cs={session.id}"
    assert sink.types[-1] == "checkout.session.completed"
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["customer"]})
    assert done.customer.email == "page@example.com"


def test_hosted_checkout_page_decline_shows_error(client, emu, catalog, sink):
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price": catalog["credits"].id}],
            "success_url": "http://127.0.0.1:8000/ok",
        }
    )
    resp = _form(emu, f"/checkout/{session.id}", card_number="4000000000000002", exp="1/30")
    assert resp.status == 402
    assert "Your card was declined." in resp.body.decode()
    assert 'role="alert"' in resp.body.decode() or "role='alert'" in resp.body.decode()
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert sink.events == []
