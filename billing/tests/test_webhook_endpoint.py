"""The webhook endpoint with payloads we sign ourselves: signatures, bad input, failures."""

from __future__ import annotations

import time

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from djstripe.models import Event, WebhookEventTrigger

from billing.tests.harness import WEBHOOK_SECRET, event_body, post, sign
from subscriptions.models import CreditAccount


@pytest.fixture
def endpoint_configured(stripe_harness):
    """Keys and secret set; dj-stripe's own calls (it fetches the account) reach the emulator."""
    return stripe_harness


def test_a_correctly_signed_event_is_stored_and_acknowledged(client, endpoint_configured):
    body = event_body()
    response = post(client, body, sign(body))
    assert response.status_code == 200
    trigger = WebhookEventTrigger.objects.get()
    assert trigger.valid and trigger.processed


def test_without_a_signature_it_is_400_and_nothing_is_stored(client, endpoint_configured):
    assert post(client, event_body(), None).status_code == 400
    assert not WebhookEventTrigger.objects.exists()


@pytest.mark.parametrize(
    "signature",
    [
        sign(event_body(), secret="whsec_someone_else"),
        sign(event_body(), timestamp=int(time.time()) - 3600),  # stale: outside the tolerance
        "t=oops,v1=nothex",
        "garbage",
    ],
    ids=["wrong-secret", "stale", "unparsable", "garbage"],
)
def test_bad_signatures_are_400_and_change_nothing(client, endpoint_configured, signature):
    response = post(client, event_body(), signature)
    assert response.status_code == 400
    assert not Event.objects.exists()


def test_a_body_altered_after_signing_is_400(client, endpoint_configured):
    body = event_body()
    signature = sign(body)
    assert (
        post(client, body.replace("invoice.upcoming", "invoice.paid"), signature).status_code == 400
    )


def test_malformed_json_is_400(client, endpoint_configured):
    body = "{not json"
    assert post(client, body, sign(body)).status_code == 400


def test_a_livemode_event_on_the_test_endpoint_is_400(client, endpoint_configured):
    body = event_body(livemode=True)
    assert post(client, body, sign(body)).status_code == 400
    assert not Event.objects.exists()


def test_a_huge_body_is_refused(client, endpoint_configured):
    body = event_body(description="x" * (5 * 1024 * 1024))
    assert post(client, body, sign(body)).status_code == 413
    assert not WebhookEventTrigger.objects.exists()


def test_without_a_webhook_secret_configured_it_is_503(client, settings, db):
    settings.STRIPE_TEST_WEBHOOK_SECRET = ""
    body = event_body()
    assert post(client, body, sign(body)).status_code == 503


def test_a_duplicate_delivery_is_200_with_no_second_effect(client, endpoint_configured):
    body = event_body()
    assert post(client, body, sign(body)).status_code == 200
    assert post(client, body, sign(body)).status_code == 200
    assert Event.objects.count() == 1


def test_a_duplicate_is_answered_before_dj_stripe_stores_another_trigger(
    client, endpoint_configured, django_assert_max_num_queries
):
    body = event_body()
    assert post(client, body, sign(body)).status_code == 200
    with django_assert_max_num_queries(2):  # the endpoint row, the event id
        response = post(client, body, sign(body, timestamp=int(time.time()) + 1))
    assert response.status_code == 200 and response.json()["duplicate"] is True
    assert WebhookEventTrigger.objects.count() == 1


def test_a_badly_signed_duplicate_is_refused_and_stores_nothing(client, endpoint_configured):
    body = event_body()
    assert post(client, body, sign(body)).status_code == 200
    for signature in (sign(body, secret="whsec_wrong"), sign(body, timestamp=1)):
        assert post(client, body, signature).status_code == 400
    assert WebhookEventTrigger.objects.count() == 1
    assert Event.objects.count() == 1


def test_a_failing_handler_answers_500_rolls_back_and_succeeds_on_retry(
    api, owner, stripe_harness, monkeypatch
):
    from billing import sync

    api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    stripe_harness.deliver()
    session_id = stripe_harness.emulator.store.all("checkout.session")[0]["id"]
    stripe_harness.emulator.complete_checkout(session_id)
    real_apply = sync.subscription_apply

    def broken(*args, **kwargs):
        real_apply(*args, **kwargs)  # writes, then fails midway: all of it must roll back
        raise RuntimeError("database went away")

    monkeypatch.setattr(sync, "subscription_apply", broken)
    batch = list(stripe_harness.queued)
    stripe_harness.queued.clear()
    statuses = [stripe_harness.post(delivery) for delivery in batch]
    assert 500 in statuses
    account = CreditAccount.objects.get(user=owner)
    assert account.tier == "free" and account.remaining == 50  # the free allowance only
    failed = WebhookEventTrigger.objects.filter(processed=False).exclude(exception="")
    assert failed.exists() and "database went away" in failed.first().exception

    monkeypatch.setattr(sync, "subscription_apply", real_apply)
    assert {stripe_harness.post(delivery) for delivery in batch} == {200}
    account.refresh_from_db()
    assert (account.tier, account.remaining) == ("pro", 500)


def test_an_event_for_an_unknown_customer_is_acknowledged_and_changes_nothing(
    stripe_harness, owner
):
    import stripe

    key = "sk_test_hrvstrTests0123456789abcdef"
    customer = stripe.Customer.create(email="stranger@example.com", api_key=key)
    price = stripe.Price.list(lookup_keys=["pro_monthly"], api_key=key).data[0]
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer=customer.id,
        line_items=[{"price": price.id, "quantity": 1}],
        success_url="http://127.0.0.1/ok",
        cancel_url="http://127.0.0.1/cancel",
        api_key=key,
    )
    stripe_harness.emulator.complete_checkout(session.id)
    stripe_harness.deliver()  # asserts every delivery got 200
    assert not CreditAccount.objects.exclude(tier="free").exists()


def test_staff_can_replay_a_failed_delivery_once_the_cause_is_fixed(
    api, owner, stripe_harness, staff, monkeypatch
):
    from billing import services, sync

    subscribe = api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    stripe_harness.deliver()
    stripe_harness.emulator.complete_checkout(subscribe.json()["sessionId"])
    real_apply = sync.subscription_apply
    monkeypatch.setattr(sync, "subscription_apply", lambda *a, **k: 1 / 0)
    batch, stripe_harness.queued = stripe_harness.queued, []
    for delivery in batch:
        stripe_harness.post(delivery)
    failed = list(WebhookEventTrigger.objects.filter(valid=True, processed=False))
    assert failed
    monkeypatch.setattr(sync, "subscription_apply", real_apply)
    assert all(services.webhook_event_replay(trigger=t, staff_user=staff) for t in failed)
    assert CreditAccount.objects.get(user=owner).tier == "pro"
    failed[0].refresh_from_db()
    assert services.webhook_event_replay(trigger=failed[0], staff_user=staff) is False


def test_an_unsigned_delivery_cannot_be_replayed(client, endpoint_configured, staff):
    from billing import services
    from hrvstr.errors import DomainError

    # Refused posts are no longer stored; one stored before that (or by dj-stripe's own URL)
    # still cannot be replayed.
    post(client, event_body(), sign(event_body(), secret="whsec_wrong"))
    assert not WebhookEventTrigger.objects.exists()
    trigger = WebhookEventTrigger.objects.create(
        remote_ip="127.0.0.1", body=event_body(), headers={}, valid=False, processed=False
    )
    with pytest.raises(DomainError):
        services.webhook_event_replay(trigger=trigger, staff_user=staff)


# --- every refusal changes nothing and leaves a trace in the log ---------------------------------


def _snapshot():
    from activities.models import LedgerEntry

    accounts = sorted(
        CreditAccount.objects.values_list(
            "user_id", "tier", "monthly_allowance", "monthly_used", "purchased_balance"
        )
    )
    return accounts, LedgerEntry.objects.count(), Event.objects.count()


def _bad_request(kind: str) -> tuple[str, str | None]:
    body = event_body("customer.subscription.updated")
    if kind == "no-signature":
        return body, None
    if kind == "wrong-secret":
        return body, sign(body, secret="whsec_someone_else")
    if kind == "stale":
        return body, sign(body, timestamp=int(time.time()) - 3600)
    if kind == "altered":
        return body, sign(body.replace("updated", "deleted"))
    if kind == "altered-after-signing":
        signature = sign(body)
        return body.replace('"livemode": false', '"livemode": false ') + " ", signature
    if kind == "malformed":
        return "{not json", sign("{not json")
    if kind == "five-megabytes":
        big = event_body("customer.subscription.updated", description="x" * (5 * 1024 * 1024))
        return big, sign(big)
    if kind == "livemode":
        live = event_body("customer.subscription.updated", livemode=True)
        return live, sign(live)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("no-signature", 400),
        ("wrong-secret", 400),
        ("stale", 400),
        ("altered", 400),
        ("altered-after-signing", 400),
        ("malformed", 400),
        ("five-megabytes", 413),
        ("livemode", 400),
    ],
)
def test_bad_input_gets_its_status_changes_nothing_and_is_logged(
    client, endpoint_configured, owner, caplog, kind, status
):
    body, signature = _bad_request(kind)
    before = _snapshot()
    with caplog.at_level("WARNING"):
        response = post(client, body, signature)
    assert response.status_code == status
    assert _snapshot() == before
    assert not Event.objects.exists()
    warnings = [r for r in caplog.records if r.levelname in {"WARNING", "ERROR"}]
    assert warnings, f"{kind}: nothing logged"
    # The log names the problem, never the secret or the signature.
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert WEBHOOK_SECRET not in logged
    if signature:
        assert signature.split("v1=")[-1] not in logged


def test_an_unknown_customer_is_logged(stripe_harness, owner, caplog):
    import stripe

    key = "sk_test_hrvstrTests0123456789abcdef"
    customer = stripe.Customer.create(email="stranger@example.com", api_key=key)
    price = stripe.Price.list(lookup_keys=["pro_monthly"], api_key=key).data[0]
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer=customer.id,
        line_items=[{"price": price.id, "quantity": 1}],
        success_url="http://127.0.0.1/ok",
        cancel_url="http://127.0.0.1/cancel",
        api_key=key,
    )
    stripe_harness.emulator.complete_checkout(session.id)
    before = _snapshot()[:2]
    with caplog.at_level("WARNING"):
        stripe_harness.deliver()
    assert _snapshot()[:2] == before
    assert any("no user" in r.getMessage() for r in caplog.records)


def test_an_unknown_price_keeps_tier_and_credits_flags_the_account_and_logs(
    api, owner, stripe_harness, caplog
):
    import stripe

    from billing.tests.harness import subscribe_pro

    key = "sk_test_hrvstrTests0123456789abcdef"
    subscribe_pro(api, stripe_harness)
    account = CreditAccount.objects.get(user=owner)
    product = stripe.Product.create(name="Not ours", api_key=key)
    price = stripe.Price.create(
        product=product.id,
        unit_amount=999,
        currency="usd",
        recurring={"interval": "month"},
        api_key=key,
    )
    subscription = stripe.Subscription.retrieve(account.stripe_subscription_id, api_key=key)
    stripe.Subscription.modify(
        subscription.id,
        items=[{"id": subscription["items"]["data"][0]["id"], "price": price.id}],
        proration_behavior="none",
        api_key=key,
    )
    from activities.models import LedgerEntry

    before = _snapshot()[0]
    rows_before = LedgerEntry.objects.filter(user=owner).count()
    with caplog.at_level("WARNING"):
        stripe_harness.deliver()
    assert _snapshot()[0] == before
    # The flag is on the account for staff; the credits are not touched, so the ledger gets
    # no row (issue 16: no zero rows).
    assert LedgerEntry.objects.filter(user=owner).count() == rows_before
    account.refresh_from_db()
    assert account.tier == "pro" and "Unknown Stripe price" in account.billing_problem
    assert any("Unknown Stripe price" in r.getMessage() for r in caplog.records)


def test_a_database_error_midway_answers_500_leaves_nothing_and_the_retry_applies(
    api, owner, stripe_harness, caplog
):
    """The ledger row and the account update are written, then the database fails: all of it
    must roll back. The fault is injected under the ORM (an execute wrapper), so it does not
    depend on how the services are arranged."""
    from django.db import DatabaseError, connection

    from activities.models import LedgerEntry

    api.post("/api/billing/create-checkout-session", {"tier": "pro"}, format="json")
    stripe_harness.deliver()
    session_id = stripe_harness.emulator.store.all("checkout.session")[0]["id"]
    stripe_harness.emulator.complete_checkout(session_id)
    batch, stripe_harness.queued = stripe_harness.queued, []
    ledger = LedgerEntry._meta.db_table
    accounts = CreditAccount._meta.db_table

    def fail_after_both_writes(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        seen = context["connection"].__dict__.setdefault("_soak_writes", set())
        if sql.startswith("INSERT") and ledger in sql:
            seen.add("ledger")
        if sql.startswith("UPDATE") and accounts in sql:
            seen.add("account")
        if seen == {"ledger", "account"}:
            seen.clear()
            raise DatabaseError("could not write block: disk full")
        return result

    with caplog.at_level("ERROR"), connection.execute_wrapper(fail_after_both_writes):
        statuses = [stripe_harness.post(delivery) for delivery in batch]
    assert any(status >= 500 for status in statuses)
    assert not any(300 <= status < 500 for status in statuses)
    assert any("failed" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    account = CreditAccount.objects.get(user=owner)
    assert (account.tier, account.monthly_allowance, account.remaining) == ("free", 50, 50)
    assert not LedgerEntry.objects.filter(user=owner).exclude(kind="period_reset").exists()

    assert {stripe_harness.post(delivery) for delivery in batch} == {200}
    account.refresh_from_db()
    assert (account.tier, account.remaining) == ("pro", 500)
    from subscriptions.selectors import ledger_drift

    assert ledger_drift(account=account) == {}


def test_a_signed_event_of_a_type_we_neither_act_on_nor_show_is_acknowledged_unstored(
    client, endpoint_configured
):
    from billing.webhook_events import enabled_events

    body = event_body("product.created")
    response = post(client, body, sign(body))
    assert response.status_code == 200 and response.json()["ignored"] is True
    assert not WebhookEventTrigger.objects.exists()
    # What the endpoint is subscribed to: what we act on and what our pages show, no more.
    events = set(enabled_events())
    assert {"invoice.paid", "checkout.session.completed", "charge.refunded"} <= events
    assert {"product.created", "price.updated", "payment_intent.succeeded"}.isdisjoint(events)
    assert len(events) < 60


# --- the fast path (billing.endpoint.WebhookFastPath) ---------------------------------------


def test_a_delivery_gets_securitys_headers_and_none_meant_for_a_page(client, endpoint_configured):
    body = event_body()
    response = post(client, body, sign(body))
    assert response.status_code == 200 and response.json()["received"] is True
    assert WebhookEventTrigger.objects.get().processed
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware ran
    assert response["Content-Length"] == str(len(response.content))
    # The browser middleware did not: no policy for a page, no session, no Vary on cookies.
    for header in ("Content-Security-Policy", "X-Frame-Options", "Vary"):
        assert header not in response
    assert not response.cookies
    # Any other API answer has them.
    assert "Content-Security-Policy" in client.get("/api/billing/pricing")


def test_a_plain_http_delivery_is_redirected_to_https_before_anything_is_stored(
    client, endpoint_configured, settings
):
    settings.SECURE_SSL_REDIRECT = True
    body = event_body()
    response = post(client, body, sign(body))
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/api/billing/webhook"
    assert not WebhookEventTrigger.objects.exists()


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_on_the_webhook_path_are_routed_and_answered_405_in_json(
    client, endpoint_configured, method
):
    response = getattr(client, method)("/api/billing/webhook")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed" and response["Allow"] == "POST"
    assert not WebhookEventTrigger.objects.exists()


def test_a_post_with_a_trailing_slash_is_routed_and_answered_404_in_json(
    client, endpoint_configured
):
    body = event_body()
    response = post(client, body, sign(body), path="/api/billing/webhook/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert not WebhookEventTrigger.objects.exists()


def test_under_a_script_prefix_a_delivery_still_takes_the_fast_path(endpoint_configured):
    from django.urls import set_script_prefix

    from billing.endpoint import WebhookFastPath

    set_script_prefix("/billing-backend/")
    try:
        fast_path = WebhookFastPath(lambda request: HttpResponse(status=418))
    finally:
        set_script_prefix("/")
    body = event_body()
    request = RequestFactory().post(
        "/api/billing/webhook",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body),
    )
    assert fast_path(request).status_code == 200
    assert fast_path(RequestFactory().get("/api/billing/webhook")).status_code == 418
