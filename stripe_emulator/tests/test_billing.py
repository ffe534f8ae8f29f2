"""Subscriptions, invoices, test clocks, plan changes, cancellation and refunds via the SDK."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator.billing import add_interval

from .tests_helpers import START, subscribe

FEB_1 = 1_769_904_000
MAR_1 = 1_772_323_200
DAY = 86400
HOUR = 3600


def clocked_customer(client, email="clock@example.com"):
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START, "name": "t"})
    cus = client.v1.customers.create(params={"email": email, "test_clock": clock.id})
    return clock, cus


def test_add_interval_clamps_month_ends():
    jan31 = 1_769_817_600  # 2026-01-31
    assert add_interval(jan31, "month") == 1_772_236_800  # 2026-02-28
    assert add_interval(START, "year") == START + 365 * DAY
    assert add_interval(START, "week", 2) == START + 14 * DAY


def test_test_clock_renewal_success(client, emu, catalog, sink):
    clock, cus = clocked_customer(client)
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id, customer=cus.id)
    sink.events.clear()
    advanced = client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": FEB_1 + 2 * 3600}
    )
    assert advanced.status == "advancing"
    assert client.v1.test_helpers.test_clocks.retrieve(clock.id).status == "ready"
    assert sink.types == [
        "test_helpers.test_clock.advancing",
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.updated",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice_payment.paid",
        "test_helpers.test_clock.ready",
    ]
    renewal = sink.of_type("customer.subscription.updated")[0]
    assert renewal["created"] == FEB_1
    prev_items = renewal["data"]["previous_attributes"]["items"]["data"][0]
    assert prev_items["current_period_end"] == FEB_1
    sub = client.v1.subscriptions.retrieve(sub.id)
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (FEB_1, MAR_1)
    invoices = client.v1.invoices.list(params={"subscription": sub.id})
    assert [i.billing_reason for i in invoices.data] == [
        "subscription_cycle",
        "subscription_create",
    ]
    cycle = invoices.data[0]
    assert cycle.status == "paid" and cycle.amount_paid == 3000
    assert (cycle.period_start, cycle.period_end) == (START, FEB_1)
    lines = client.v1.invoices.line_items.list(cycle.id)
    assert lines.data[0].period.start == FEB_1 and lines.data[0].period.end == MAR_1
    assert lines.data[0].parent.subscription_item_details.subscription == sub.id
    assert sub.latest_invoice == cycle.id


def test_failed_renewal_with_0341_then_retries_then_cancel(client, emu, catalog, sink):
    clock, cus = clocked_customer(client)
    _, sub = subscribe(
        client, emu, catalog["pro_monthly"].id, card="4000000000000341", customer=cus.id
    )
    assert sub.status == "active"  # the first payment succeeds with 0341
    sink.events.clear()
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": FEB_1 + HOUR + 60})
    assert "charge.failed" in sink.types and "invoice.payment_failed" in sink.types
    failed = sink.of_type("invoice.payment_failed")[0]["data"]["object"]
    assert failed["attempt_count"] == 1
    assert failed["next_payment_attempt"] == FEB_1 + HOUR + 3 * DAY
    past_due = sink.of_type("customer.subscription.updated")[-1]["data"]
    assert past_due["object"]["status"] == "past_due"
    assert past_due["previous_attributes"] == {"status": "active"}
    # three retries over 15 days, then the subscription is canceled
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": FEB_1 + 16 * DAY})
    assert len(sink.of_type("invoice.payment_failed")) == 4
    deleted = sink.of_type("customer.subscription.deleted")
    assert len(deleted) == 1 and deleted[0]["data"]["object"]["status"] == "canceled"
    assert deleted[0]["data"]["object"]["cancellation_details"]["reason"] == "payment_failed"
    inv = client.v1.invoices.retrieve(failed["id"])
    assert inv.status == "open" and inv.next_payment_attempt is None


def test_failed_renewal_then_card_update_and_pay(client, emu, catalog, sink):
    clock, cus = clocked_customer(client)
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id, customer=cus.id)
    emu.set_renewal_outcome(cus.id, "fail")
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": FEB_1 + HOUR + 60})
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "past_due" and sub.latest_invoice.status == "open"
    bad = client.v1.payment_methods.attach("pm_card_chargeDeclined", params={"customer": cus.id})
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(sub.latest_invoice.id, params={"payment_method": bad.id})
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": cus.id})
    paid = client.v1.invoices.pay(sub.latest_invoice.id, params={"payment_method": pm.id})
    assert paid.status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_invoice_pay_declined_returns_402(client, emu, catalog):
    clock, cus = clocked_customer(client)
    _, sub = subscribe(
        client, emu, catalog["pro_monthly"].id, customer=cus.id, card="4000000000000341"
    )
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": FEB_1 + HOUR + 60})
    sub = client.v1.subscriptions.retrieve(sub.id)
    with pytest.raises(stripe.CardError) as info:
        client.v1.invoices.pay(sub.latest_invoice)
    assert info.value.http_status == 402 and info.value.code == "card_declined"


def test_plan_change_create_prorations(client, emu, catalog, sink, clock):
    _, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    clock.t = START + 10 * DAY  # a third of January (31 days) has passed... 10/31
    sink.events.clear()
    item = sub["items"].data[0]
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "price": catalog["pro_monthly"].id}],
            "proration_behavior": "create_prorations",
        },
    )
    assert updated["items"].data[0].price.id == catalog["pro_monthly"].id
    assert sink.types == [
        "customer.subscription.updated",
        "invoiceitem.created",
        "invoiceitem.created",
    ]
    prev = sink.events[0]["data"]["previous_attributes"]
    assert prev["items"]["data"][0]["price"]["id"] == catalog["basic_monthly"].id
    credit, debit = (e["data"]["object"] for e in sink.events[1:])
    remaining, total = FEB_1 - clock.t, FEB_1 - START
    assert credit["amount"] == -round(1000 * remaining / total)
    assert debit["amount"] == round(3000 * remaining / total)
    assert credit["proration"] and debit["proration"] and credit["invoice"] is None
    assert credit["parent"]["subscription_details"]["subscription"] == sub.id
    # the prorations are billed on the next cycle invoice
    emu.advance_clock(FEB_1 - int(clock.t) + 60)
    cycle = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert cycle.billing_reason == "subscription_cycle"
    assert cycle.total == 3000 + credit["amount"] + debit["amount"]
    assert client.v1.invoice_items.retrieve(credit["id"]).invoice == cycle.id


def test_plan_change_always_invoice(client, emu, catalog, sink, clock):
    _, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    clock.t = START + 15 * DAY
    sink.events.clear()
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": catalog["pro_monthly"].id}],
            "proration_behavior": "always_invoice",
        },
    )
    assert sink.types[:3] == [
        "customer.subscription.updated",
        "invoiceitem.created",
        "invoiceitem.created",
    ]
    assert "invoice.paid" in sink.types
    inv = sink.of_type("invoice.paid")[0]["data"]["object"]
    assert inv["billing_reason"] == "subscription_update"
    assert inv["amount_paid"] == round(2000 * (FEB_1 - clock.t) / (FEB_1 - START))


def test_plan_change_none_and_interval_change(client, emu, catalog, sink, clock):
    _, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    sink.events.clear()
    item_id = sub["items"].data[0].id
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item_id, "price": catalog["pro_monthly"].id}],
            "proration_behavior": "none",
        },
    )
    assert sink.types == ["customer.subscription.updated"]
    clock.t = START + 5 * DAY
    changed = client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item_id, "price": catalog["pro_yearly"].id}]}
    )
    item = changed["items"].data[0]
    assert item.current_period_start == clock.t
    assert item.current_period_end == add_interval(int(clock.t), "year")
    inv = client.v1.invoices.retrieve(changed.latest_invoice)
    assert inv.billing_reason == "subscription_update" and inv.status == "paid"
    assert inv.total == 30000 - round(3000 * (FEB_1 - clock.t) / (FEB_1 - START))


def test_update_errors(client, emu, catalog):
    _, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.update(sub.id, params={"proration_behavior": "sometimes"})
    assert info.value.param == "proration_behavior"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": "si_nope", "price": catalog["pro_monthly"].id}]}
        )
    assert info.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.update(sub.id, params={"trial_end": "now"})
    assert info.value.code == "parameter_unknown"


def test_cancel_at_period_end_then_clock_deletes(client, emu, catalog, sink, clock):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id, metadata={"x": "1"})
    sink.events.clear()
    clock.t = START + DAY
    sub = client.v1.subscriptions.update(
        sub.id, params={"cancel_at_period_end": True, "metadata": {"reason": "too pricey"}}
    )
    assert sub.cancel_at_period_end and sub.cancel_at == FEB_1 and sub.canceled_at == clock.t
    assert sub.cancellation_details.reason == "cancellation_requested"
    assert sub.metadata.to_dict() == {"reason": "too pricey"}
    event = sink.events[0]
    assert event["type"] == "customer.subscription.updated"
    assert event["data"]["previous_attributes"]["cancel_at_period_end"] is False
    emu.advance_clock(FEB_1 - int(clock.t) + 10)
    assert sink.types[-1] == "customer.subscription.deleted"
    assert "invoice.created" not in sink.types
    gone = client.v1.subscriptions.retrieve(sub.id)
    assert gone.status == "canceled" and gone.ended_at == FEB_1
    assert client.v1.subscriptions.list(params={"customer": sub.customer}).data == []
    listed = client.v1.subscriptions.list(params={"customer": sub.customer, "status": "all"})
    assert [s.id for s in listed.data] == [sub.id]


def test_cancel_at_and_undo_and_resume(client, emu, catalog, sink):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    sub = client.v1.subscriptions.update(sub.id, params={"cancel_at": START + 5 * DAY})
    assert sub.cancel_at == START + 5 * DAY and not sub.cancel_at_period_end
    sub = client.v1.subscriptions.resume(sub.id)
    assert sub.cancel_at is None and sub.canceled_at is None
    sub = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    sub = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False})
    assert sub.cancel_at is None
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.resume(sub.id)


def test_immediate_cancel(client, emu, catalog, sink, clock):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    clock.t = START + 3 * DAY
    sink.events.clear()
    canceled = client.v1.subscriptions.cancel(
        sub.id, params={"cancellation_details": {"comment": "bye"}}
    )
    assert canceled.status == "canceled"
    assert canceled.canceled_at == canceled.ended_at == clock.t
    assert canceled.cancellation_details.comment == "bye"
    assert sink.types == ["customer.subscription.deleted"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.cancel(sub.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})


def test_subscription_items_and_lists(client, emu, catalog):
    session, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    item = sub["items"].data[0]
    assert sub["items"].url == f"/v1/subscription_items?subscription={sub.id}"
    assert client.v1.subscription_items.retrieve(item.id).price.id == catalog["pro_monthly"].id
    items = client.v1.subscription_items.list(params={"subscription": sub.id})
    assert [i.id for i in items.auto_paging_iter()] == [item.id]
    subs = client.v1.subscriptions.list(params={"customer": session.customer, "status": "active"})
    assert [s.id for s in subs.data] == [sub.id]
    expanded = client.v1.subscriptions.retrieve(
        sub.id, params={"expand": ["latest_invoice.payments", "items.data.price.product"]}
    )
    assert expanded["items"].data[0].price.product.name == "HRVSTR Pro"
    payment = expanded.latest_invoice.payments.data[0]
    assert payment.status == "paid"
    assert client.v1.invoice_payments.retrieve(payment.id).invoice == expanded.latest_invoice.id
    pi = client.v1.payment_intents.retrieve(payment.payment.payment_intent)
    ch = client.v1.charges.retrieve(pi.latest_charge, params={"expand": ["balance_transaction"]})
    assert ch.balance_transaction.amount == 3000 and ch.balance_transaction.fee == 117
    assert client.v1.balance_transactions.retrieve(ch.balance_transaction.id).net == 2883
    pms = client.v1.payment_methods.list(params={"customer": session.customer, "type": "card"})
    assert pms.data[0].card.last4 == "4242" and pms.data[0].id == pi.payment_method


def test_refunds_partial_and_full(client, emu, catalog, sink):
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price": catalog["credits"].id, "quantity": 2}],
            "success_url": "http://127.0.0.1/ok",
        }
    )
    emu.complete_checkout(session.id)
    pi_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    sink.events.clear()
    partial = client.v1.refunds.create(params={"payment_intent": pi_id, "amount": 300})
    assert partial.status == "succeeded" and partial.amount == 300
    assert sink.types == ["refund.created", "charge.refunded"]
    charge = sink.events[1]["data"]["object"]
    assert charge["amount_refunded"] == 300 and charge["refunded"] is False
    assert sink.events[1]["data"]["previous_attributes"] == {
        "amount_refunded": 0,
        "refunded": False,
    }
    rest = client.v1.refunds.create(params={"charge": charge["id"], "reason": "duplicate"})
    assert rest.amount == 700
    assert client.v1.charges.retrieve(charge["id"]).refunded is True
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"charge": charge["id"]})
    assert info.value.code == "charge_already_refunded"
    refunds = client.v1.refunds.list(params={"payment_intent": pi_id})
    assert {r.id for r in refunds.data} == {partial.id, rest.id}
    txn = client.v1.balance_transactions.retrieve(rest.balance_transaction)
    assert txn.amount == -700 and txn.type == "refund"


def test_refund_errors(client, emu, catalog):
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": "pi_missing"})
    assert info.value.http_status == 404 and info.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={})
    assert info.value.code == "parameter_missing"


def test_global_clock_renewal_and_test_clock_list_delete(client, emu, catalog, sink):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    emu.advance_clock(62 * DAY)  # two renewals
    cycles = client.v1.invoices.list(params={"subscription": sub.id})
    assert [i.billing_reason for i in cycles.data].count("subscription_cycle") == 2
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})
    assert [c.id for c in client.v1.test_helpers.test_clocks.list().data] == [clock.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": START - 1})
    deleted = client.v1.test_helpers.test_clocks.delete(clock.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.test_helpers.test_clocks.retrieve(clock.id)
    assert info.value.http_status == 404


def test_invoice_void_uncollectible_and_finalize_errors(client, emu, catalog, sink):
    clock, cus = clocked_customer(client)
    _, sub = subscribe(
        client, emu, catalog["pro_monthly"].id, customer=cus.id, card="4000000000000341"
    )
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": FEB_1 + HOUR + 60})
    open_id = client.v1.subscriptions.retrieve(sub.id).latest_invoice
    voided = client.v1.invoices.void_invoice(open_id)
    assert voided.status == "void" and voided.status_transitions.voided_at == FEB_1 + HOUR + 60
    assert sink.types[-1] == "invoice.voided"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.mark_uncollectible(open_id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.finalize_invoice(open_id)
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": MAR_1 + HOUR + 60})
    second = client.v1.subscriptions.retrieve(sub.id).latest_invoice
    marked = client.v1.invoices.mark_uncollectible(second)
    assert marked.status == "uncollectible" and sink.types[-1] == "invoice.marked_uncollectible"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoices.pay(second)
    assert info.value.code == "invoice_not_open"
    drafts = client.v1.invoices.list(params={"customer": cus.id, "status": "draft"})
    assert drafts.data == []


def test_open_sessions_expire_when_the_clock_passes(client, emu, catalog, sink):
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price": catalog["credits"].id}],
            "success_url": "http://127.0.0.1/ok",
        }
    )
    emu.advance_clock(24 * 3600 + 1)
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"
    expired = sink.of_type("checkout.session.expired")
    assert expired[0]["created"] == session.expires_at


def test_cancel_at_period_end_keywords_and_item_without_id(client, emu, catalog):
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    sub = client.v1.subscriptions.update(sub.id, params={"cancel_at": "max_period_end"})
    assert sub.cancel_at == FEB_1
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"price": catalog["basic_monthly"].id}]}
        )
    assert info.value.param == "items[0][id]"


def test_a_renewal_invoice_is_finalized_and_charged_an_hour_after_the_new_period(
    client, emu, catalog, sink
):
    clock, cus = clocked_customer(client)
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id, customer=cus.id)
    sink.events.clear()
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": FEB_1 + 60})
    assert sink.types == [
        "test_helpers.test_clock.advancing",
        "customer.subscription.updated",
        "invoice.created",
        "test_helpers.test_clock.ready",
    ]
    draft = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert draft.status == "draft" and draft.automatically_finalizes_at == FEB_1 + HOUR
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": FEB_1 + HOUR})
    paid = client.v1.invoices.retrieve(draft.id)
    assert paid.status == "paid" and paid.status_transitions.finalized_at == FEB_1 + HOUR
    assert sink.types.index("invoice.finalized") < sink.types.index("invoice.paid")


@pytest.mark.parametrize(
    ("subscription", "invoice", "status", "invoice_status"),
    [
        ("unpaid", "uncollectible", "unpaid", "uncollectible"),
        ("past_due", "open", "past_due", "open"),
        ("cancel", "void", "canceled", "void"),
    ],
)
def test_the_dunning_settings_decide_how_failed_retries_end(
    client, emu, catalog, sink, subscription, invoice, status, invoice_status
):
    emu.set_dunning(retry_days=[1, 2], subscription=subscription, invoice=invoice)
    clock, cus = clocked_customer(client)
    _, sub = subscribe(
        client, emu, catalog["pro_monthly"].id, customer=cus.id, card="4000000000000341"
    )
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": FEB_1 + HOUR + 2 * DAY}
    )
    assert len(sink.of_type("invoice.payment_failed")) == 2
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": FEB_1 + HOUR + 4 * DAY}
    )
    assert len(sink.of_type("invoice.payment_failed")) == 3
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert (sub.status, sub.latest_invoice.status) == (status, invoice_status)
    assert sub.latest_invoice.next_payment_attempt is None


def test_dunning_settings_are_checked_and_served(emu):
    resp = emu.handle("POST", "/_emulator/dunning", {}, b"subscription=nope")
    assert resp.status == 400
    resp = emu.handle("POST", "/_emulator/dunning", {}, b"retry_days[0]=2&invoice=void")
    assert resp.json() == {"retry_days": [2.0], "subscription": "cancel", "invoice": "void"}
