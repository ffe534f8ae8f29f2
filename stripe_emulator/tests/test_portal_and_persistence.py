"""The customer portal page and its actions; JSON snapshots."""

from __future__ import annotations

import json
import os
from urllib.parse import unquote, unquote_plus, urlencode, urlsplit

import stripe

from stripe_emulator import Emulator
from stripe_emulator.client import EmulatorHTTPClient

from .tests_helpers import KEY, START, FakeClock, subscribe

FEB_1 = 1_769_904_000


def post_form(emu, path, **fields):
    body = urlencode(fields).encode()
    return emu.handle("POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, body)


def portal_for(client, customer_id):
    return client.v1.billing_portal.sessions.create(
        params={"customer": customer_id, "return_url": "http://127.0.0.1:8000/account"}
    )


def test_portal_page_lists_subscription_and_plans(client, emu, catalog):
    session, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    bps = portal_for(client, session.customer)
    page = emu.handle("GET", f"/portal/{bps.id}")
    html = page.body.decode()
    assert page.status == 200
    assert "HRVSTR Basic" in html and "renews on 01 Feb 2026" in html
    assert catalog["pro_monthly"].id in html and catalog["pro_yearly"].id in html
    assert "Cancel at period end" in html and "Cancel now" in html
    assert "visa •••• 4242" in html and "http://127.0.0.1:8000/account" in html


def test_portal_switch_plan(client, emu, catalog, sink):
    session, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    bps = portal_for(client, session.customer)
    sink.events.clear()
    resp = post_form(
        emu,
        f"/portal/{bps.id}",
        action="switch",
        subscription=sub.id,
        price=catalog["pro_monthly"].id,
    )
    assert resp.status == 303 and "Plan%20switched" in resp.headers["Location"]
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == (
        catalog["pro_monthly"].id
    )
    assert sink.types[0] == "customer.subscription.updated"
    assert sink.types.count("invoiceitem.created") == 2


def test_portal_cancel_resume_cancel_now(client, emu, catalog, sink):
    session, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    bps = portal_for(client, session.customer)
    path = f"/portal/{bps.id}"
    post_form(emu, path, action="cancel_at_period_end", subscription=sub.id)
    assert client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end
    assert "Resume" in emu.handle("GET", path).body.decode()
    post_form(emu, path, action="resume", subscription=sub.id)
    assert not client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end
    resp = post_form(emu, path, action="cancel_now", subscription=sub.id)
    assert "canceled" in unquote(resp.headers["Location"])
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert sink.types[-1] == "customer.subscription.deleted"
    assert "No active subscription" in emu.handle("GET", path).body.decode()


def test_portal_update_card_to_0341_fails_next_renewal(client, emu, catalog, sink):
    session, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    bps = portal_for(client, session.customer)
    resp = post_form(emu, f"/portal/{bps.id}", action="card", card_number="4000 0000 0000 0341")
    assert "0341" in unquote(resp.headers["Location"])
    cus = client.v1.customers.retrieve(session.customer)
    pm = client.v1.payment_methods.retrieve(cus.invoice_settings.default_payment_method)
    assert pm.card.last4 == "0341"
    assert client.v1.subscriptions.retrieve(sub.id).default_payment_method == pm.id
    emu.advance_clock(FEB_1 - START + 3600 + 60)
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    assert sink.types.count("invoice.payment_failed") == 1


def test_portal_errors_are_shown(client, emu, catalog):
    session, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    bps = portal_for(client, session.customer)
    resp = post_form(emu, f"/portal/{bps.id}", action="card", card_number="12")
    assert "full card number" in unquote(resp.headers["Location"])
    page = emu.handle("GET", resp.headers["Location"]).body.decode()
    assert "role='alert'" in page
    assert emu.handle("GET", "/portal/bps_missing").status == 404


def test_snapshot_round_trip(tmp_path):
    path = str(tmp_path / "state.json")
    clock = FakeClock()
    first = Emulator(clock=clock, state_path=path)
    client = stripe.StripeClient(KEY, http_client=EmulatorHTTPClient(first))
    price = client.v1.prices.create(
        params={
            "product_data": {"name": "Kept"},
            "unit_amount": 900,
            "currency": "usd",
            "recurring": {"interval": "month"},
        }
    )
    session, sub = subscribe(client, first, price.id)
    client.v1.customers.create(params={"email": "idem@x.io"}, options={"idempotency_key": "p1"})
    first.advance_clock(3600)
    assert os.path.exists(path)
    assert [p for p in os.listdir(tmp_path) if p != "state.json"] == []  # temp file renamed
    second = Emulator(clock=clock, state_path=path)
    again = stripe.StripeClient(KEY, http_client=EmulatorHTTPClient(second))
    assert again.v1.subscriptions.retrieve(sub.id).status == "active"
    assert again.v1.checkout.sessions.line_items.list(session.id).data[0].price.id == price.id
    replay = again.v1.customers.create(
        params={"email": "idem@x.io"}, options={"idempotency_key": "p1"}
    )
    assert len(again.v1.customers.list(params={"email": "idem@x.io"}).data) == 1
    assert replay.email == "idem@x.io"
    assert second.now() == first.now()
    # new ids do not collide with loaded ones
    loaded = set(second.store.objects)
    fresh = again.v1.customers.create(params={"email": "new@x.io"})
    assert fresh.id not in loaded
    second.reset()
    assert json.load(open(path))["objects"] == {}
    assert Emulator(state_path=path).store.objects == {}


def test_an_open_invoice_is_paid_with_a_card_on_its_hosted_page(client, emu, catalog, sink):
    session, sub = subscribe(client, emu, catalog["pro_monthly"].id, card="4000000000000341")
    emu.advance_clock(FEB_1 - START + 3600 + 60)  # the renewal fails
    invoice = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert invoice.status == "open"
    path = urlsplit(invoice.hosted_invoice_url).path
    page = emu.handle("GET", path).body.decode()
    assert "name='card_number'" in page
    assert f"Pay {invoice.amount_remaining / 100:,.2f} USD" in page

    declined = post_form(emu, path, card_number="4000 0000 0000 0002")
    assert "declined" in unquote(declined.headers["Location"])
    assert client.v1.invoices.retrieve(invoice.id).status == "open"

    paid = post_form(emu, path, card_number="4242 4242 4242 4242")
    assert "Paid" in unquote(paid.headers["Location"])
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert sink.types.count("invoice.paid") == 2  # the first invoice and this one
    # The card is the customer's now, but not their default: the failing one stays.
    cus = client.v1.customers.retrieve(session.customer)
    default = client.v1.payment_methods.retrieve(cus.invoice_settings.default_payment_method)
    assert default.card.last4 == "0341"
    again = post_form(emu, path, card_number="4242 4242 4242 4242")
    assert "nothing to pay" in unquote(again.headers["Location"])
    assert "name='card_number'" not in emu.handle("GET", path).body.decode()


def test_the_clock_page_advances_by_its_steps_and_links_back_only_to_this_machine(emu):
    before = emu.now()
    back = "http://127.0.0.1:8000/billing/"
    page = emu.handle("GET", "/_emulator/clock?" + urlencode({"return_to": back})).body.decode()
    assert "Advance 32 days" in page and f"href='{back}'" in page
    moved = post_form(emu, "/_emulator/clock", hours="24", return_to=back)
    assert emu.now() - before == 86_400
    after = emu.handle("GET", moved.headers["Location"]).body.decode()
    assert "Advanced 1 day." in after and f"href='{back}'" in after
    assert "Advance by a whole number" in unquote_plus(
        post_form(emu, "/_emulator/clock", hours="-5").headers["Location"]
    )
    assert emu.now() - before == 86_400
    elsewhere = "/_emulator/clock?" + urlencode({"return_to": "https://evil.example/"})
    assert "Back to the app" not in emu.handle("GET", elsewhere).body.decode()
