"""The REST protocol through stripe-python: resources, lists, expand, errors, idempotency."""

from __future__ import annotations

import json

import pytest
import stripe

from stripe_emulator.client import EmulatorHTTPClient
from stripe_emulator.objects import API_VERSION

from .tests_helpers import KEY, START


def raw(emu, method, path, body="", key=KEY, **headers):
    hdrs = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    if key is not None:
        hdrs["Authorization"] = f"Bearer {key}"
    return emu.handle(method, path, hdrs, body.encode())


def test_account(client):
    account = client.v1.accounts.retrieve_current()
    assert account.id == "acct_emulator"
    assert account.settings.dashboard.display_name == "Example Business (Stripe emulator)"
    assert account.settings.branding.icon is None


def test_the_account_name_is_a_setting(monkeypatch, clock):
    """The business name shows on the account, on invoices and charges (as the statement
    descriptor, in capitals) and on the hosted pages; the constructor wins over the env."""
    from stripe_emulator import Emulator

    monkeypatch.setenv("STRIPE_EMULATOR_ACCOUNT_NAME", "From Env Ltd")
    assert Emulator(clock=clock).account_name == "From Env Ltd"
    emu = Emulator(clock=clock, account_name="Acme <Analytics>")
    client = stripe.StripeClient(KEY, http_client=EmulatorHTTPClient(emu))
    account = client.v1.accounts.retrieve_current()
    assert account.settings.dashboard.display_name == "Acme <Analytics> (Stripe emulator)"
    assert emu.statement_descriptor == "ACME ANALYTICS"
    assert Emulator(clock=clock, account_name="Ab").statement_descriptor == "AB..."


def test_customer_crud_and_email_filter(client, sink):
    cus = client.v1.customers.create(
        params={"email": "a@example.com", "name": "Ann", "metadata": {"djstripe_subscriber": "1"}}
    )
    assert cus.id.startswith("cus_") and cus.created == START
    assert cus.metadata.to_dict() == {"djstripe_subscriber": "1"}
    assert cus.invoice_settings.default_payment_method is None
    client.v1.customers.create(params={"email": "b@example.com"})
    updated = client.v1.customers.update(
        cus.id, params={"name": "Ann B", "metadata": {"djstripe_subscriber": "", "x": "y"}}
    )
    assert updated.name == "Ann B" and updated.metadata.to_dict() == {"x": "y"}
    found = client.v1.customers.list(params={"email": "a@example.com"})
    assert [c.id for c in found.data] == [cus.id] and found.url == "/v1/customers"
    assert sink.types == ["customer.created", "customer.created", "customer.updated"]
    prev = sink.events[-1]["data"]["previous_attributes"]
    assert prev == {"name": "Ann", "metadata": {"djstripe_subscriber": "1"}}


def test_customer_expand_default_source_and_sources(client):
    cus = client.v1.customers.create(params={"email": "s@example.com"})
    got = client.v1.customers.retrieve(cus.id, params={"expand": ["default_source", "sources"]})
    assert got.default_source is None
    assert got.sources.to_dict() == {
        "object": "list",
        "data": [],
        "has_more": False,
        "url": f"/v1/customers/{cus.id}/sources",
    }
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.retrieve(cus.id, params={"expand": ["nonsense"]})
    assert "cannot be expanded" in info.value.user_message


def test_prices_filters_and_expand_data_product(client, catalog):
    by_key = client.v1.prices.list(params={"lookup_keys": ["pro_monthly", "pro_yearly"]})
    assert {p.lookup_key for p in by_key.data} == {"pro_monthly", "pro_yearly"}
    expanded = client.v1.prices.list(params={"active": True, "expand": ["data.product"]})
    assert all(isinstance(p.product, stripe.Product) for p in expanded.data)
    product_id = catalog["pro_monthly"].product
    of_product = client.v1.prices.list(params={"product": product_id})
    assert {p.id for p in of_product.data} == {catalog["pro_monthly"].id, catalog["pro_yearly"].id}
    one = client.v1.prices.retrieve(catalog["pro_monthly"].id, params={"expand": ["product"]})
    assert one.product.name == "HRVSTR Pro" and one.recurring.interval == "month"
    client.v1.prices.update(catalog["credits"].id, params={"active": False})
    active = client.v1.prices.list(params={"active": False})
    assert [p.id for p in active.data] == [catalog["credits"].id]
    assert client.v1.products.list(params={"limit": 100}).data[0].name == "Credit bundle"


def test_paging_with_auto_paging_iter(client):
    ids = [client.v1.customers.create(params={"email": f"p{i}@x.io"}).id for i in range(7)]
    page = client.v1.customers.list(params={"limit": 3})
    assert [c.id for c in page.data] == ids[::-1][:3] and page.has_more
    nxt = client.v1.customers.list(params={"limit": 3, "starting_after": page.data[-1].id})
    assert [c.id for c in nxt.data] == ids[::-1][3:6]
    back = client.v1.customers.list(params={"limit": 2, "ending_before": nxt.data[0].id})
    assert [c.id for c in back.data] == ids[::-1][1:3]
    assert [c.id for c in page.auto_paging_iter()] == ids[::-1]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.list(params={"limit": 101})


def test_not_found_errors_are_404(client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.retrieve("cus_missing")
    err = info.value
    assert err.http_status == 404 and err.code == "resource_missing" and err.param == "id"
    assert err.user_message == "No such customer: 'cus_missing'"
    for call in (
        lambda: client.v1.invoices.retrieve("in_x"),
        lambda: client.v1.subscriptions.retrieve("sub_x"),
        lambda: client.v1.events.retrieve("evt_x"),
        lambda: client.v1.payment_methods.retrieve("pm_x"),
    ):
        with pytest.raises(stripe.InvalidRequestError) as info:
            call()
        assert info.value.http_status == 404


def test_parameter_errors_are_400(client):
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.create(params={"emial": "typo@x.io"})
    assert info.value.http_status == 400 and info.value.code == "parameter_unknown"
    assert info.value.param == "emial"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.prices.create(params={"currency": "usd", "unit_amount": "ten"})
    assert info.value.code == "parameter_invalid_integer"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.products.create(params={})
    assert info.value.code == "parameter_missing" and info.value.param == "name"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.create(params={"metadata": {"nested": {"deep": "x"}}})
    assert info.value.http_status == 400


def test_authentication(emu):
    for key in (None, "sk_live_abcdef123456", "pk_test_123", "rk_test_123"):
        resp = raw(emu, "GET", "/v1/customers", key=key)
        assert resp.status == 401, key
        assert resp.json()["error"]["type"] == "invalid_request_error"
    live = stripe.StripeClient("sk_live_123456789", http_client=EmulatorHTTPClient(emu))
    with pytest.raises(stripe.AuthenticationError) as info:
        live.v1.customers.list()
    assert "test-mode" in info.value.user_message
    assert raw(emu, "GET", "/v1/customers").status == 200


def test_headers_version_and_request_id(emu):
    resp = raw(emu, "GET", "/v1/account", **{"Stripe-Version": "2026-03-25.dahlia"})
    assert resp.headers["Stripe-Version"] == "2026-03-25.dahlia"
    assert resp.headers["Request-Id"].startswith("req_")
    assert raw(emu, "GET", "/v1/account").headers["Stripe-Version"] == API_VERSION
    assert raw(emu, "GET", "/v1/nothing_here").status == 404
    assert raw(emu, "DELETE", "/v1/account").status == 405


def test_idempotency_replay_and_conflict(emu, sink):
    first = raw(emu, "POST", "/v1/customers", "email=i%40x.io", **{"Idempotency-Key": "k1"})
    again = raw(emu, "POST", "/v1/customers", "email=i%40x.io", **{"Idempotency-Key": "k1"})
    assert first.status == again.status == 200
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(sink.of_type("customer.created")) == 1
    clash = raw(emu, "POST", "/v1/customers", "email=other%40x.io", **{"Idempotency-Key": "k1"})
    assert clash.status == 400
    assert clash.json()["error"]["type"] == "idempotency_error"
    # the same parameters in another order are the same request
    reordered = raw(
        emu, "POST", "/v1/customers", "name=N&email=n%40x.io", **{"Idempotency-Key": "k3"}
    )
    again = raw(emu, "POST", "/v1/customers", "email=n%40x.io&name=N", **{"Idempotency-Key": "k3"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == reordered.json()["id"]
    # a request that failed validation saves nothing: the key can be used again
    bad = raw(emu, "POST", "/v1/customers", "bogus=1", **{"Idempotency-Key": "k2"})
    assert bad.status == 400 and "Idempotent-Replayed" not in bad.headers
    good = raw(emu, "POST", "/v1/customers", "email=k%40x.io", **{"Idempotency-Key": "k2"})
    assert good.status == 200
    # an executed error (a decline, a missing object) is replayed
    gone1 = raw(emu, "POST", "/v1/customers/cus_nope", "name=x", **{"Idempotency-Key": "k4"})
    gone2 = raw(emu, "POST", "/v1/customers/cus_nope", "name=x", **{"Idempotency-Key": "k4"})
    assert gone1.status == gone2.status == 404 and gone2.headers["Idempotent-Replayed"] == "true"


def test_a_second_use_of_a_key_while_the_first_runs_is_409(emu):
    answers = []

    def receiver(body, headers):  # runs while the first request is still in progress
        if not answers:
            answers.append(
                raw(emu, "POST", "/v1/customers", "email=c%40x.io", **{"Idempotency-Key": "kc"})
            )
        return 200

    emu.add_webhook_endpoint(receiver, "whsec_x")
    first = raw(emu, "POST", "/v1/customers", "email=c%40x.io", **{"Idempotency-Key": "kc"})
    assert first.status == 200
    [second] = answers
    assert second.status == 409
    assert second.json()["error"]["code"] == "idempotency_key_in_use"
    third = raw(emu, "POST", "/v1/customers", "email=c%40x.io", **{"Idempotency-Key": "kc"})
    assert third.headers["Idempotent-Replayed"] == "true"
    assert len([c for c in emu.store.all("customer")]) == 1


def test_idempotency_through_sdk(client, emu):
    a = client.v1.customers.create(params={"email": "x@x.io"}, options={"idempotency_key": "z"})
    b = client.v1.customers.create(params={"email": "x@x.io"}, options={"idempotency_key": "z"})
    assert a.id == b.id
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"email": "y@x.io"}, options={"idempotency_key": "z"})


def test_bracket_notation_and_get_query(emu):
    body = "email=q%40x.io&metadata[uid]=1&metadata[plan]=pro&preferred_locales[0]=fr"
    cus = raw(emu, "POST", "/v1/customers", body).json()
    assert cus["metadata"] == {"uid": "1", "plan": "pro"} and cus["preferred_locales"] == ["fr"]
    got = raw(emu, "GET", f"/v1/customers/{cus['id']}?expand[]=sources").json()
    assert got["sources"]["object"] == "list"
    got = raw(emu, "GET", f"/v1/customers/{cus['id']}?expand[0]=sources").json()
    assert got["sources"]["url"].endswith("/sources")


def test_events_retrieve_and_list(client, catalog):
    events = client.v1.events.list(params={"type": "price.created"})
    assert len(events.data) == 4 and all(e.type == "price.created" for e in events.data)
    assert events.data[0].data.object.object == "price"
    one = client.v1.events.retrieve(events.data[0].id)
    assert one.api_version == API_VERSION and one.livemode is False
    wildcard = client.v1.events.list(params={"type": "product.*", "limit": 100})
    assert len(wildcard.data) == 3
    plans = client.v1.events.list(params={"types": ["plan.created"]})
    assert len(plans.data) == 3
    later = client.v1.events.list(params={"created": {"gt": START}})
    assert later.data == []


def test_webhook_endpoints_api(client, emu):
    created = client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["invoice.paid"]}
    )
    assert created.secret.startswith("whsec_") and created.status == "enabled"
    got = client.v1.webhook_endpoints.retrieve(created.id)
    assert "secret" not in got.to_dict()
    assert [w.id for w in client.v1.webhook_endpoints.list().data] == [created.id]
    updated = client.v1.webhook_endpoints.update(created.id, params={"disabled": True})
    assert updated.status == "disabled"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.webhook_endpoints.create(
            params={"url": "https://example.com/hook", "enabled_events": ["*"]}
        )
    assert info.value.param == "url"
    assert client.v1.webhook_endpoints.delete(created.id).deleted is True
    assert client.v1.webhook_endpoints.list().data == []


def test_payment_methods_attach_tokens_and_default(client, sink):
    cus = client.v1.customers.create(params={"email": "pm@x.io"})
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": cus.id})
    assert pm.id.startswith("pm_") and pm.card.last4 == "4242" and pm.customer == cus.id
    cus = client.v1.customers.update(
        cus.id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    assert cus.invoice_settings.default_payment_method == pm.id
    listed = client.v1.payment_methods.list(params={"customer": cus.id, "type": "card"})
    assert [p.id for p in listed.data] == [pm.id]
    assert listed.url == "/v1/payment_methods"
    detached = client.v1.payment_methods.detach(pm.id)
    assert detached.customer is None
    assert sink.types[-1] == "payment_method.detached"


def test_billing_portal_session(client, emu, sink):
    cus = client.v1.customers.create(params={"email": "portal@x.io"})
    session = client.v1.billing_portal.sessions.create(
        params={"customer": cus.id, "return_url": "http://127.0.0.1:8000/account"}
    )
    assert session.id.startswith("bps_") and session.url == f"{emu.base_url}/portal/{session.id}"
    assert sink.types[-1] == "billing_portal.session.created"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.billing_portal.sessions.create(params={"customer": "cus_nope"})
    assert info.value.http_status == 404 and info.value.param == "customer"


def test_global_default_http_client(emu, monkeypatch, catalog):
    monkeypatch.setattr(stripe, "api_key", KEY)
    monkeypatch.setattr(stripe, "default_http_client", EmulatorHTTPClient(emu))
    prices = stripe.Price.list(lookup_keys=["pro_monthly"], expand=["data.product"])
    assert prices.data[0].product.name == "HRVSTR Pro"
    cus = stripe.Customer.create(email="g@x.io", metadata={"djstripe_subscriber": "9"})
    assert stripe.Customer.retrieve(cus.id).metadata["djstripe_subscriber"] == "9"


def test_json_body_is_pretty_and_parseable(emu):
    resp = raw(emu, "GET", "/v1/account")
    assert json.loads(resp.body)["object"] == "account"
    assert resp.headers["Content-Type"] == "application/json"


def test_async_methods_work_in_process(client, catalog):
    import asyncio

    async def main():
        cus = await client.v1.customers.create_async(params={"email": "async@x.io"})
        return await client.v1.customers.retrieve_async(cus.id)

    assert asyncio.run(main()).email == "async@x.io"


def test_sdk_retries_are_kept(emu):
    retrying = stripe.StripeClient(KEY, http_client=EmulatorHTTPClient(emu), max_network_retries=2)
    assert retrying.v1.customers.list().data == []


def test_delete_customer_cancels_subscriptions(client, emu, catalog, sink):
    from .tests_helpers import subscribe

    session, sub = subscribe(client, emu, catalog["pro_monthly"].id)
    sink.events.clear()
    deleted = client.v1.customers.delete(session.customer)
    assert deleted.deleted is True
    assert sink.types == ["customer.subscription.deleted", "customer.deleted"]
    assert client.v1.customers.retrieve(session.customer).deleted is True
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert session.customer not in {c.id for c in client.v1.customers.list().data}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.update(session.customer, params={"name": "x"})
    assert client.v1.accounts.retrieve("acct_emulator").id == "acct_emulator"


def test_expand_depth_limit(client, emu, catalog):
    from .tests_helpers import subscribe

    session, _ = subscribe(client, emu, catalog["pro_monthly"].id)
    deep = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["subscription.latest_invoice.customer.test_clock"]}
    )
    assert deep.subscription.latest_invoice.customer.email
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.retrieve(
            session.id, params={"expand": ["subscription.latest_invoice.customer.a.b"]}
        )
    assert "4 levels" in info.value.user_message
