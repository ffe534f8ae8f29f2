"""The whole purchase over real HTTP: our server, the emulator's server and its hosted pages.

Nothing is called in-process here: the SPA's calls, the card form, Stripe's redirects and
the signed webhooks (delivered by the emulator's background thread, with retries) all cross
loopback sockets, as they do under `make run`.
"""

from __future__ import annotations

import time

import pytest
import requests
import stripe

from billing.tests.harness import SECRET_KEY, WEBHOOK_SECRET, endpoint_subscribe
from stripe_emulator import Emulator

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stripe_server(live_server, settings):
    emulator = Emulator(delivery="background", retry_delays=(0.2, 0.5, 1.0))
    server = emulator.serve("127.0.0.1", 0)
    endpoint_subscribe(emulator, f"{live_server.url}/api/billing/webhook")
    settings.STRIPE_TEST_SECRET_KEY = SECRET_KEY
    settings.STRIPE_TEST_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_HOST = server.url
    settings.SITE_URL = live_server.url
    settings.RATELIMIT_ENABLE = False
    previous_base = stripe.api_base
    from billing.catalogue_sync import catalogue_sync, portal_configuration_sync

    catalogue_sync()
    portal_configuration_sync()
    try:
        yield emulator
    finally:
        emulator.flush(10)
        server.shutdown()
        emulator.close()
        stripe.api_base = previous_base


def wait_for(fetch, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_sign_up_pay_with_4242_buy_credits_unlock_and_cancel_over_http(live_server, stripe_server):
    http = requests.Session()
    api = f"{live_server.url}/api"
    tokens = http.post(
        f"{api}/auth/register", json={"email": "buyer@example.com", "password": "a long passphrase"}
    ).json()["data"]
    http.headers["Authorization"] = f"Bearer {tokens['access']}"

    def tier_info():
        return http.get(f"{api}/subscription/tier-info").json()["data"]

    def pay(body, card="4242 4242 4242 4242"):
        start = http.post(f"{api}/billing/create-checkout-session", json=body).json()
        page = requests.get(start["url"])
        assert page.status_code == 200 and "card" in page.text.lower()
        paid = requests.post(
            start["url"],
            data={"card_number": card, "exp": "12/34", "cvc": "123"},
            allow_redirects=False,
        )
        assert paid.status_code == 303
        assert paid.headers["Location"].startswith(f"{live_server.url}/billing/success/")
        assert start["sessionId"] in paid.headers["Location"]

    pay({"tier": "pro", "interval": "month"})
    data = wait_for(tier_info, lambda d: d["tier"] == "pro")
    assert (data["tier"], data["credits"]["remaining"]) == ("pro", 500)

    pay({"bundle": "credits_250"})
    data = wait_for(tier_info, lambda d: d["credits"]["remaining"] == 750)
    assert data["credits"]["purchased"] == 250

    unlock = http.post(f"{api}/credits/unlock-component", json={"component": "reddit"}).json()
    assert unlock["data"]["charged"] is True and unlock["data"]["creditsRemaining"] == 738

    portal = http.post(f"{api}/billing/customer-portal").json()["url"]
    assert requests.get(portal).status_code == 200
    subscription_id = http.get(f"{api}/billing/subscription").json()["data"]["id"]
    cancelled = requests.post(
        portal,
        data={"action": "cancel_now", "subscription": subscription_id},
        allow_redirects=False,
    )
    assert cancelled.status_code in (302, 303)
    data = wait_for(tier_info, lambda d: d["tier"] == "free")
    # The unlock came out of the monthly allowance, which ends with the plan; purchases stay,
    # beside a fresh free allowance.
    assert (data["tier"], data["credits"]["remaining"]) == ("free", 50 + 250)
    stripe_server.flush(10)
    last_status: dict[str, int | None] = {}
    for delivery in stripe_server.deliveries:
        last_status[delivery["event"]] = delivery["status"]
    assert last_status and set(last_status.values()) == {200}
