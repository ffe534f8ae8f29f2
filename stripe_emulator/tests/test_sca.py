"""3-D Secure: the Checkout challenge, requires_action renewals and the confirmation page."""

from __future__ import annotations

import pytest

from stripe_emulator.errors import StripeError

from .tests_helpers import subscribe

DAY, HOUR = 86400, 3600
ALWAYS = "4000002760003184"
ON_SESSION = "4000002500003155"


def checkout_session(client, catalog):
    return client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": catalog["pro_monthly"].id}],
            "success_url": "http://127.0.0.1/ok",
        }
    )


def test_the_checkout_page_asks_for_3ds_and_a_failed_challenge_leaves_it_open(
    client, emu, catalog, sink
):
    session = checkout_session(client, catalog)
    resp = emu.handle("POST", f"/checkout/{session.id}", {}, f"card_number={ALWAYS}".encode())
    assert resp.status == 200 and b"Complete authentication" in resp.body
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    failed = emu.handle(
        "POST", f"/checkout/{session.id}", {}, f"card_number={ALWAYS}&three_d_secure=fail".encode()
    )
    assert failed.status == 402 and b"unable to authenticate" in failed.body
    done = emu.handle(
        "POST",
        f"/checkout/{session.id}",
        {},
        f"card_number={ALWAYS}&three_d_secure=complete".encode(),
    )
    assert done.status == 303
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_a_card_set_up_by_checkout_renews_without_3ds(client, emu, catalog, sink):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id, card=ON_SESSION)
    emu.advance_clock(32 * DAY)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active" and sub.latest_invoice.status == "paid"
    assert "invoice.payment_action_required" not in sink.types


def test_a_renewal_that_needs_3ds_waits_for_the_customer(client, emu, catalog, sink):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id, card=ALWAYS)
    emu.advance_clock(31 * DAY + HOUR)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "past_due" and sub.latest_invoice.status == "open"
    assert "invoice.payment_action_required" in sink.types
    assert "payment_intent.requires_action" in sink.types
    [waiting] = [e["data"]["object"] for e in sink.of_type("payment_intent.requires_action")]
    assert waiting["next_action"]["redirect_to_url"]["url"].endswith(
        f"/authenticate/{waiting['id']}"
    )
    page = emu.handle("GET", f"/invoices/{sub.latest_invoice.id}", {}, b"")
    assert f"/authenticate/{waiting['id']}".encode() in page.body
    confirmed = emu.handle("POST", f"/authenticate/{waiting['id']}", {}, b"outcome=complete")
    assert b"Payment confirmed" in confirmed.body
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "active" and sub.latest_invoice.status == "paid"
    assert client.v1.payment_intents.retrieve(waiting["id"]).status == "succeeded"


def test_a_failed_challenge_fails_the_invoice_payment(client, emu, catalog, sink):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id, card=ALWAYS)
    emu.advance_clock(31 * DAY + HOUR)
    pi_id = sink.of_type("payment_intent.requires_action")[-1]["data"]["object"]["id"]
    resp = emu.handle(
        "POST", f"/_emulator/payment_intents/{pi_id}/authenticate", {}, b"outcome=fail"
    )
    assert resp.json()["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    assert sink.types[-3:] == [
        "payment_intent.payment_failed",
        "invoice.payment_failed",
        "invoice.updated",
    ]
    with pytest.raises(StripeError):
        with emu.transaction():
            from stripe_emulator.sca import authenticate

            authenticate(emu, pi_id, "complete")
