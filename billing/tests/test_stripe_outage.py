"""A hung Stripe (the offline Stripe paused): a clear answer within the timeout, and the
user's other requests unaffected (issue 12, item 4).

The emulator is served over a real socket so that the SDK's own timeout and retries decide,
as they would against Stripe.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import stripe
from django.db import connections
from django.test import Client

from billing import gateway
from billing.tests.harness import SECRET_KEY, WEBHOOK_SECRET, catalogue_ready
from conftest import bearer_client, logged_in
from stripe_emulator import Emulator
from subscriptions import services
from subscriptions.models import CreditAccount

TIMEOUT, RETRIES = 0.5, 1  # seconds: short, so the suite waits little; the rule is the same
# Each attempt waits TIMEOUT; the SDK sleeps ~0.5 s before its retry.
WORST_CASE = (RETRIES + 1) * TIMEOUT + 1.0


@pytest.fixture
def paused_stripe(settings, transactional_db):
    emulator = Emulator(delivery="background")
    server = emulator.serve("127.0.0.1", 0)
    emulator.add_webhook_endpoint(lambda body, headers: 200, WEBHOOK_SECRET)
    settings.STRIPE_TEST_SECRET_KEY = SECRET_KEY
    settings.STRIPE_TEST_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_HOST = server.url
    settings.STRIPE_TIMEOUT_SECONDS = TIMEOUT
    settings.STRIPE_MAX_NETWORK_RETRIES = RETRIES
    settings.RATELIMIT_ENABLE = False
    previous = (stripe.api_base, stripe.default_http_client, stripe.max_network_retries)
    stripe.default_http_client = None  # the SDK's stock client, as in production
    # Prices exist (and are cached) before the outage: made over HTTP by the first test in a
    # process, copied into later ones (~1 s of setup each, with this emulator served).
    catalogue_ready(emulator)
    for key in ("pro_monthly",):
        from billing.services import price_id_for

        price_id_for(key)
    emulator.pause()
    try:
        yield emulator
    finally:
        emulator.resume()
        server.shutdown()
        emulator.close()
        stripe.api_base, stripe.default_http_client, stripe.max_network_retries = previous


def test_the_sdk_is_bounded_by_the_settings(paused_stripe, settings):
    gateway._configure()
    assert stripe.max_network_retries == RETRIES
    client = stripe.default_http_client
    assert isinstance(client, stripe.RequestsClient) and client._timeout == TIMEOUT


def test_checkout_answers_stripe_unavailable_within_the_timeout_and_spends_go_on(
    paused_stripe, owner
):
    services.credits_purchase_add(user=owner, credits=20, idempotency_key="grant")
    remaining = CreditAccount.objects.get(user=owner).remaining
    checkout: dict[str, Any] = {}

    def start_checkout() -> None:
        started = time.monotonic()
        try:
            response = bearer_client(owner).post(
                "/api/billing/create-checkout-session",
                {"tier": "pro", "interval": "month"},
                format="json",
            )
            checkout.update(response=response, seconds=time.monotonic() - started)
        finally:
            # This thread's own connection: left open, a statement it did not finish can hold
            # SQLite's lock, and the test database's flush waited its 20 s timeout for it.
            connections.close_all()

    thread = threading.Thread(target=start_checkout)
    thread.start()
    time.sleep(0.3)  # the checkout is now waiting on Stripe
    spend_times = []
    for n in range(3):
        started = time.monotonic()
        spend = bearer_client(owner).post(
            "/api/credits/spend",
            {"action": "ai_ticker_analysis", "quantity": 1},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"during-outage-{n}",
        )
        spend_times.append(time.monotonic() - started)
        assert spend.status_code == 200, spend.content
    thread.join(timeout=60)
    response, seconds = checkout["response"], checkout["seconds"]
    print(
        f"\nStripe paused: checkout answered {response.status_code} "
        f"{response.json().get('code')} after {seconds:.2f} s "
        f"(timeout {TIMEOUT} s x {RETRIES + 1} attempts); spends meanwhile took "
        + ", ".join(f"{t * 1000:.0f} ms" for t in spend_times)
    )
    assert response.status_code == 503
    assert response.json()["code"] == "stripe_unavailable"
    assert "Stripe" in response.json()["error"]
    assert seconds < WORST_CASE + 2
    assert max(spend_times) < 1.0
    assert CreditAccount.objects.get(user=owner).remaining == remaining - 3


def test_the_checkout_page_shows_the_error_page_within_the_timeout(paused_stripe, owner):
    client: Client = logged_in(owner)
    started = time.monotonic()
    response = client.post("/billing/checkout/", {"tier": "pro", "interval": "month"})
    seconds = time.monotonic() - started
    assert response.status_code == 503
    assert "Payments are unreachable right now" in response.content.decode()
    assert seconds < WORST_CASE + 2


def test_once_stripe_answers_again_the_same_customer_is_used(paused_stripe, owner):
    # The customer creation that timed out was processed by Stripe once it answered again;
    # the retry carries the same idempotency key, so no second customer appears.
    response = bearer_client(owner).post(
        "/api/billing/create-checkout-session", {"tier": "pro", "interval": "month"}, format="json"
    )
    assert response.status_code == 503
    paused_stripe.resume()
    response = bearer_client(owner).post(
        "/api/billing/create-checkout-session", {"tier": "pro", "interval": "month"}, format="json"
    )
    assert response.status_code == 200, response.content
    customers = [c for c in paused_stripe.store.all("customer") if c["email"] == owner.email]
    assert len(customers) == 1
    assert CreditAccount.objects.get(user=owner).stripe_customer_id == customers[0]["id"]
