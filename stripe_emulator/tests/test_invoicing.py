"""Billing reasons beyond renewals: manual invoices and subscription thresholds."""

from __future__ import annotations

import pytest
import stripe

from .tests_helpers import subscribe


def test_a_manual_invoice_for_pending_items(client, emu, catalog, sink):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    item = client.v1.invoice_items.create(
        params={"customer": sub.customer, "price": catalog["credits"].id, "quantity": 3}
    )
    assert (item.amount, item.invoice) == (1500, None)
    inv = client.v1.invoices.create(
        params={"customer": sub.customer, "pending_invoice_items_behavior": "include"}
    )
    assert (inv.billing_reason, inv.status, inv.total, inv.parent) == (
        "manual",
        "draft",
        1500,
        None,
    )
    client.v1.invoices.finalize_invoice(inv.id)
    paid = client.v1.invoices.pay(inv.id)
    assert paid.status == "paid" and paid.amount_paid == 1500
    assert sink.of_type("invoice.paid")[-1]["data"]["object"]["billing_reason"] == "manual"


def test_an_auto_advancing_manual_invoice_is_charged_an_hour_later(client, emu, catalog, sink):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    client.v1.invoice_items.create(
        params={"customer": sub.customer, "price": catalog["credits"].id, "subscription": sub.id}
    )
    inv = client.v1.invoices.create(
        params={
            "customer": sub.customer,
            "subscription": sub.id,
            "pending_invoice_items_behavior": "include",
            "auto_advance": True,
        }
    )
    assert inv.parent.subscription_details.subscription == sub.id
    emu.advance_clock(3600)
    assert client.v1.invoices.retrieve(inv.id).status == "paid"


def test_a_threshold_invoice_bills_pending_items_at_once(client, emu, catalog, sink):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    client.v1.invoice_items.create(
        params={"customer": sub.customer, "price": catalog["credits"].id, "subscription": sub.id}
    )
    resp = emu.handle("POST", f"/_emulator/subscriptions/{sub.id}/threshold_invoice", {}, b"")
    inv = resp.json()
    assert (inv["billing_reason"], inv["status"], inv["total"]) == (
        "subscription_threshold",
        "paid",
        500,
    )
    again = emu.handle("POST", f"/_emulator/subscriptions/{sub.id}/threshold_invoice", {}, b"")
    assert again.status == 400


def test_invoice_items_take_a_one_time_price(client, emu, catalog):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoice_items.create(
            params={"customer": sub.customer, "price": catalog["pro_monthly"].id}
        )
