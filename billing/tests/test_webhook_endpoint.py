"""The webhook endpoint with payloads we sign ourselves: signatures, bad input, failures."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from djstripe.models import Event, WebhookEventTrigger

from billing.tests.harness import WEBHOOK_SECRET
from subscriptions.models import CreditAccount


def sign(body: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def event_body(event_type: str = "invoice.upcoming", livemode: bool = False, **obj) -> str:
    event = {
        "id": f"evt_test_{abs(hash((event_type, json.dumps(obj, sort_keys=True)))) % 10**10}",
        "object": "event",
        "api_version": "2026-08-26.dahlia",
        "created": int(time.time()),
        "data": {"object": {"object": "invoice", **obj}},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return json.dumps(event)


def post(client, body: str, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(
        "/api/billing/webhook", data=body, content_type="application/json", **headers
    )


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
    assert post(client, body, sign(body)).status_code == 400


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


def test_a_badly_signed_duplicate_still_goes_to_dj_stripe_and_is_refused(
    client, endpoint_configured
):
    body = event_body()
    assert post(client, body, sign(body)).status_code == 200
    for signature in (sign(body, secret="whsec_wrong"), sign(body, timestamp=1)):
        assert post(client, body, signature).status_code == 400
    assert WebhookEventTrigger.objects.filter(valid=False).count() == 2
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
    assert account.tier == "free" and account.remaining == 0
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

    post(client, event_body(), sign(event_body(), secret="whsec_wrong"))
    trigger = WebhookEventTrigger.objects.get()
    with pytest.raises(DomainError):
        services.webhook_event_replay(trigger=trigger, staff_user=staff)
