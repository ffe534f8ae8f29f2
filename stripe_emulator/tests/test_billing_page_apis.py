"""What a billing page and auto top-up use, through the SDK: invoice previews, paying an open
invoice, off-session PaymentIntents, receipts from Checkout, cards on file, tax ids."""

from __future__ import annotations

import pytest
import stripe

from .tests_helpers import START, subscribe
from .tests_helpers import bundle_session as payment_session

DAY = 86400
FEB_1 = 1_769_904_000
MAR_1 = 1_772_323_200


def item_of(sub):
    return sub["items"].data[0]


# --- 1. invoice previews ------------------------------------------------------------------
def test_preview_of_an_upgrade_billed_now_matches_the_update(client, emu, catalog, clock, sink):
    _, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    clock.t = START + 10 * DAY
    when = START + 10 * DAY
    details = {
        "items": [{"id": item_of(sub).id, "price": catalog["pro_monthly"].id}],
        "proration_behavior": "always_invoice",
        "proration_date": when,
    }
    events_before = len(emu.events())
    preview = client.v1.invoices.create_preview(
        params={"customer": sub.customer, "subscription": sub.id, "subscription_details": details}
    )
    # Credit 21/31 of $10, charge 21/31 of $30: the one proration rule the update uses.
    unused, remaining = -round(1000 * 21 / 31), round(3000 * 21 / 31)
    assert [line.amount for line in preview.lines.data] == [unused, remaining]
    assert all(line.parent.subscription_item_details.proration for line in preview.lines.data)
    assert preview.amount_due == unused + remaining == 1355
    assert preview.id.startswith("upcoming_in_") and preview.billing_reason == "subscription_update"
    assert preview.lines.data[0].period.start == when
    # Nothing happened: no event, no invoice, the subscription unchanged.
    assert len(emu.events()) == events_before
    assert client.v1.invoices.list(params={"customer": sub.customer}).data[0].id == (
        sub.latest_invoice
    )
    assert item_of(client.v1.subscriptions.retrieve(sub.id)).price.id == catalog["basic_monthly"].id
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.retrieve(preview.id)

    updated = client.v1.subscriptions.update(sub.id, params=details)
    billed = client.v1.invoices.retrieve(updated.latest_invoice)
    assert billed.amount_due == preview.amount_due and billed.status == "paid"
    assert [line.amount for line in billed.lines.data] == [unused, remaining]


def test_preview_with_create_prorations_is_the_next_invoice(client, emu, catalog, clock):
    _, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    clock.t = START + 10 * DAY
    preview = client.v1.invoices.create_preview(
        params={
            "subscription": sub.id,
            "subscription_details": {
                "items": [{"id": item_of(sub).id, "price": catalog["pro_monthly"].id}],
                "proration_date": START + 10 * DAY,
            },
        }
    )
    assert preview.billing_reason == "subscription_cycle"
    prorations = [
        line.amount
        for line in preview.lines.data
        if line.parent.subscription_item_details.proration
    ]
    assert sorted(prorations) == [-677, 2032]
    assert preview.amount_due == 3000 - 677 + 2032  # February at the new price, plus prorations
    assert preview.next_payment_attempt == FEB_1 + 3600


def test_upcoming_invoice_without_changes_gives_next_amount_and_date(client, emu, catalog):
    _, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    upcoming = client.v1.invoices.create_preview(
        params={"customer": sub.customer, "subscription": sub.id}
    )
    assert upcoming.amount_due == 1000 and upcoming.currency == "usd"
    [line] = upcoming.lines.data
    assert (line.period.start, line.period.end) == (FEB_1, MAR_1)
    assert upcoming.next_payment_attempt == FEB_1 + 3600  # charged an hour after it is made
    assert upcoming.number is None and upcoming.status == "draft"

    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert info.value.code == "invoice_upcoming_none"


def test_preview_on_a_test_clock_leaves_the_clock_where_it_was(client, emu, catalog):
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})
    cus = client.v1.customers.create(params={"email": "c@example.com", "test_clock": clock.id})
    _, sub = subscribe(client, emu, catalog["pro_monthly"].id, customer=cus.id)
    upcoming = client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert upcoming.amount_due == 3000 and upcoming.next_payment_attempt == FEB_1 + 3600
    assert client.v1.test_helpers.test_clocks.retrieve(clock.id).frozen_time == START
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": FEB_1 + 7200})
    renewal = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert renewal.amount_paid == upcoming.amount_due  # the preview was the real next invoice


def test_preview_refuses_what_the_update_refuses(client, emu, catalog):
    _, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoices.create_preview(
            params={
                "subscription": sub.id,
                "subscription_details": {
                    "items": [{"id": item_of(sub).id, "price": catalog["credits"].id}],
                },
            }
        )
    assert info.value.param == "items[0][price]"
    other = client.v1.customers.create(params={"email": "other@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoices.create_preview(params={"customer": other.id, "subscription": sub.id})
    assert info.value.param == "customer"


# --- 2. paying an open invoice --------------------------------------------------------------
def past_due(client, emu, catalog, clock, card="4000000000000341"):
    session, sub = subscribe(client, emu, catalog["pro_monthly"].id, card=card)
    clock.t = FEB_1 + 3600 + 60
    emu.run_due()
    sub = client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "past_due"
    return sub


def test_paying_an_open_invoice_with_a_new_card(client, emu, catalog, clock, sink):
    sub = past_due(client, emu, catalog, clock)
    sink.events.clear()
    with pytest.raises(stripe.CardError) as declined:
        client.v1.invoices.pay(sub.latest_invoice)  # the default card (0341) again
    assert declined.value.code == "card_declined"
    assert declined.value.error.payment_intent.status == "requires_payment_method"
    assert "invoice.payment_failed" in sink.types
    assert client.v1.invoices.retrieve(sub.latest_invoice).status == "open"

    sink.events.clear()
    card = client.v1.payment_methods.attach("pm_card_visa", params={"customer": sub.customer})
    paid = client.v1.invoices.pay(sub.latest_invoice, params={"payment_method": card.id})
    assert paid.status == "paid" and paid.amount_paid == 3000
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    for expected in ("invoice.paid", "invoice.payment_succeeded", "invoice_payment.paid"):
        assert expected in sink.types
    [updated] = sink.of_type("customer.subscription.updated")
    assert updated["data"]["previous_attributes"] == {"status": "past_due"}


def test_paying_with_a_card_of_another_customer_or_one_that_needs_3ds(client, emu, catalog, clock):
    sub = past_due(client, emu, catalog, clock)
    stranger = client.v1.customers.create(params={"email": "s@example.com"})
    theirs = client.v1.payment_methods.attach("pm_card_visa", params={"customer": stranger.id})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoices.pay(sub.latest_invoice, params={"payment_method": theirs.id})
    assert info.value.param == "payment_method"
    sca = client.v1.payment_methods.attach(
        "pm_card_authenticationRequired", params={"customer": sub.customer}
    )
    with pytest.raises(stripe.CardError) as info:
        client.v1.invoices.pay(sub.latest_invoice, params={"payment_method": sca.id})
    assert info.value.code == "invoice_payment_intent_requires_action"
    assert info.value.error.payment_intent.status == "requires_action"


# --- 3. off-session PaymentIntents ------------------------------------------------------------
def saved_card(client, token):
    cus = client.v1.customers.create(params={"email": "topup@example.com"})
    pm = client.v1.payment_methods.attach(token, params={"customer": cus.id})
    return cus, pm


def top_up(client, cus, pm, **options):
    return client.v1.payment_intents.create(
        params={
            "amount": 1000,
            "currency": "usd",
            "customer": cus.id,
            "payment_method": pm.id,
            "off_session": True,
            "confirm": True,
            "metadata": {"bundle": "credits_100"},
        },
        options=options,
    )


def test_off_session_payment_succeeds_once_per_idempotency_key(client, emu, sink):
    cus, pm = saved_card(client, "pm_card_visa")
    sink.events.clear()
    pi = top_up(client, cus, pm, idempotency_key="topup-1")
    assert pi.status == "succeeded" and pi.amount_received == 1000
    assert pi.metadata.to_dict() == {"bundle": "credits_100"}
    assert sink.types == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]
    again = top_up(client, cus, pm, idempotency_key="topup-1")
    assert again.id == pi.id
    assert len(client.v1.charges.list(params={"customer": cus.id}).data) == 1
    assert top_up(client, cus, pm, idempotency_key="topup-2").id != pi.id


@pytest.mark.parametrize("token", ["pm_card_chargeDeclined", "pm_card_chargeCustomerFail"])
def test_off_session_decline_carries_the_payment_intent(client, emu, sink, token):
    cus, pm = saved_card(client, token)
    sink.events.clear()
    with pytest.raises(stripe.CardError) as info:
        top_up(client, cus, pm)
    error = info.value.error
    assert info.value.code == "card_declined" and error.decline_code == "generic_decline"
    assert error.payment_intent.status == "requires_payment_method"
    assert error.payment_intent.last_payment_error.code == "card_declined"
    assert sink.types == [
        "payment_intent.created",
        "charge.failed",
        "payment_intent.payment_failed",
    ]
    stored = client.v1.payment_intents.retrieve(error.payment_intent.id)
    assert stored.status == "requires_payment_method"


def test_off_session_card_that_needs_authentication(client, emu, sink):
    cus, pm = saved_card(client, "pm_card_authenticationRequired")
    with pytest.raises(stripe.CardError) as info:
        top_up(client, cus, pm)
    assert info.value.code == "authentication_required"
    assert info.value.error.decline_code == "authentication_required"
    intent = info.value.error.payment_intent
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.code == "authentication_required"
    assert sink.types[-1] == "payment_intent.payment_failed"
    # On-session, the same card waits for the customer instead.
    on_session = client.v1.payment_intents.create(
        params={
            "amount": 1000,
            "currency": "usd",
            "customer": cus.id,
            "payment_method": pm.id,
            "confirm": True,
        }
    )
    assert on_session.status == "requires_action"
    assert on_session.next_action.redirect_to_url.url.endswith(on_session.id)


def test_payment_intent_validation(client, emu):
    cus, pm = saved_card(client, "pm_card_visa")
    bad = [
        ({"currency": "usd"}, "amount"),
        ({"amount": 10, "currency": "usd"}, "amount"),
        ({"amount": 1000, "currency": "usd", "off_session": True}, "off_session"),
    ]
    for params, param in bad:
        with pytest.raises(stripe.InvalidRequestError) as info:
            client.v1.payment_intents.create(params=params)
        assert info.value.param == param
    other = client.v1.customers.create(params={"email": "o@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_intents.create(
            params={
                "amount": 1000,
                "currency": "usd",
                "customer": other.id,
                "payment_method": pm.id,
            }
        )
    assert info.value.param == "payment_method"
    pending = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "customer": cus.id, "payment_method": pm.id}
    )
    assert pending.status == "requires_confirmation"
    assert client.v1.payment_intents.confirm(pending.id).status == "succeeded"


# --- 4. a receipt from Checkout in payment mode ---------------------------------------------
def test_payment_checkout_with_invoice_creation_makes_a_paid_invoice(client, emu, catalog, sink):
    session = payment_session(
        client,
        catalog,
        invoice_creation={"enabled": True, "invoice_data": {"metadata": {"order": "7"}}},
    )
    assert session.invoice_creation.enabled is True
    emu.complete_checkout(session.id, card="4242424242424242")
    session = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["invoice"]})
    invoice = session.invoice
    assert invoice.status == "paid" and invoice.amount_paid == session.amount_total == 1000
    assert invoice.number and invoice.hosted_invoice_url and invoice.invoice_pdf
    assert invoice.customer == session.customer and invoice.metadata.to_dict() == {"order": "7"}
    [line] = invoice.lines.data
    assert line.description == "Credit bundle" and line.quantity == 2 and line.amount == 1000
    assert invoice.account_name == "Example Business (Stripe emulator)"
    assert "invoice.paid" in sink.types and "invoice.finalized" in sink.types
    listed = client.v1.invoices.list(params={"customer": session.customer}).data
    assert [i.id for i in listed] == [invoice.id]


def test_a_receipt_carries_the_promotion_code_the_customer_entered(client, emu, catalog):
    half = client.v1.coupons.create(params={"percent_off": "50", "duration": "once"})
    client.v1.promotion_codes.create(
        params={"promotion": {"type": "coupon", "coupon": half.id}, "code": "HALFOFF"}
    )
    session = payment_session(
        client, catalog, allow_promotion_codes=True, invoice_creation={"enabled": True}
    )
    emu.complete_checkout(session.id, promotion_code="HALFOFF")
    session = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["invoice", "payment_intent"]}
    )
    invoice = session.invoice
    assert session.payment_intent.amount == session.amount_total == 500
    assert (invoice.subtotal, invoice.total, invoice.amount_paid) == (1000, 500, 500)
    assert invoice.total_discount_amounts[0].amount == 500 and invoice.status == "paid"


def test_invoice_creation_is_for_payment_mode_only(client, emu, catalog):
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "line_items": [{"price": catalog["pro_monthly"].id, "quantity": 1}],
                "success_url": "http://127.0.0.1/ok",
                "invoice_creation": {"enabled": True},
            }
        )
    assert info.value.param == "invoice_creation"
    plain = payment_session(client, catalog)
    emu.complete_checkout(plain.id)
    assert client.v1.checkout.sessions.retrieve(plain.id).invoice is None


# --- 5. card on file, invoice links, e-mail and tax ids ---------------------------------------
def test_card_on_file_and_invoice_links(client, emu, catalog):
    session, sub = subscribe(client, emu, catalog["pro_monthly"].id, card="5555555555554444")
    cus = client.v1.customers.retrieve(
        session.customer, params={"expand": ["invoice_settings.default_payment_method"]}
    )
    card = cus.invoice_settings.default_payment_method.card
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == (
        "mastercard",
        "4444",
        12,
        2034,
    )
    pm = client.v1.payment_methods.retrieve(cus.invoice_settings.default_payment_method.id)
    assert pm.card.last4 == "4444"
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert invoice.number.startswith(cus.invoice_prefix + "-")
    assert invoice.hosted_invoice_url.endswith(f"/invoices/{invoice.id}")
    assert invoice.invoice_pdf.endswith(f"/invoices/{invoice.id}/pdf")


def test_customer_email_update_and_its_validation(client, emu, sink):
    cus = client.v1.customers.create(params={"email": "a@example.com"})
    updated = client.v1.customers.update(cus.id, params={"email": "billing@example.com"})
    assert updated.email == "billing@example.com"
    assert sink.of_type("customer.updated")[-1]["data"]["previous_attributes"] == {
        "email": "a@example.com"
    }
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.update(cus.id, params={"email": "not-an-email"})
    assert (info.value.code, info.value.param) == ("email_invalid", "email")
    assert client.v1.customers.retrieve(cus.id).email == "billing@example.com"


def test_customer_tax_ids(client, emu, catalog, sink):
    session, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    cus = session.customer
    vat = client.v1.customers.tax_ids.create(cus, params={"type": "eu_vat", "value": "DE123456789"})
    assert (vat.object, vat.country, vat.value, vat.customer) == (
        "tax_id",
        "DE",
        "DE123456789",
        cus,
    )
    assert vat.verification.status == "pending"
    ein = client.v1.customers.tax_ids.create(cus, params={"type": "us_ein", "value": "12-3456789"})
    assert ein.verification is None
    verified = client.v1.customers.tax_ids.create(
        cus, params={"type": "gb_vat", "value": "GB000000000"}
    )
    assert verified.verification.status == "verified"
    assert [t.id for t in client.v1.customers.tax_ids.list(cus).data] == [
        verified.id,
        ein.id,
        vat.id,
    ]
    assert "customer.tax_id.created" in sink.types
    for params, param in [
        ({"type": "eu_vat", "value": "123"}, "value"),
        ({"type": "us_ein", "value": "DE123456789"}, "value"),
        ({"type": "xx_vat", "value": "1"}, "type"),
    ]:
        with pytest.raises(stripe.InvalidRequestError) as info:
            client.v1.customers.tax_ids.create(cus, params=params)
        assert info.value.param == param
        if param == "value":
            assert info.value.code == "tax_id_invalid"
    assert client.v1.tax_ids.retrieve(vat.id).value == "DE123456789"  # the top-level API
    deleted = client.v1.customers.tax_ids.delete(cus, ein.id)
    assert deleted.deleted is True and "customer.tax_id.deleted" in sink.types
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.tax_ids.retrieve(cus, ein.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.tax_ids.retrieve(ein.id)
    expanded = client.v1.customers.retrieve(cus, params={"expand": ["tax_ids"]})
    assert [t.value for t in expanded.tax_ids.data] == ["GB000000000", "DE123456789"]
    # The next invoice carries them: the upcoming one, and the renewal when it is finalized.
    upcoming = client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert [t.value for t in upcoming.customer_tax_ids] == ["GB000000000", "DE123456789"]


def test_the_module_level_api_the_app_uses(client, emu, catalog, monkeypatch):
    """stripe.Invoice.create_preview / Customer.create_tax_id / PaymentIntent.create, as the app
    (and dj-stripe) call them, through the module-level transport."""
    from stripe_emulator.client import EmulatorHTTPClient

    from .tests_helpers import KEY

    monkeypatch.setattr(stripe, "default_http_client", EmulatorHTTPClient(emu))
    monkeypatch.setattr(stripe, "api_key", KEY)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    session, sub = subscribe(client, emu, catalog["basic_monthly"].id)
    upcoming = stripe.Invoice.create_preview(customer=session.customer, subscription=sub.id)
    assert upcoming.amount_due == 1000
    tax_id = stripe.Customer.create_tax_id(session.customer, type="au_abn", value="12345678912")
    assert [t.id for t in stripe.Customer.list_tax_ids(session.customer).data] == [tax_id.id]
    assert stripe.Customer.delete_tax_id(session.customer, tax_id.id).deleted is True
    cus = stripe.Customer.retrieve(session.customer)
    pi = stripe.PaymentIntent.create(
        amount=500,
        currency="usd",
        customer=cus.id,
        payment_method=cus.invoice_settings.default_payment_method,
        off_session=True,
        confirm=True,
        idempotency_key="auto-top-up-1",
    )
    assert pi.status == "succeeded"
