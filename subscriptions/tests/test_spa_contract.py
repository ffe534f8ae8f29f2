"""The original HRVSTR SPA's contract: every call it makes, through HTTP, with the fields at the
paths where it reads them (and the browser's CORS preflight with its exact header lists).

One test per call (auth, tier and credits, activity, billing); the token life cycle, Google
sign-in and serving the SPA have their own files.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from subscriptions import services
from subscriptions.tests.factories import allowance_spent
from subscriptions.tokens import tokens_issue

SPA = "http://localhost:5173"
pytestmark = pytest.mark.usefixtures("spa_origin")

# What the SPA sends, per call (contexts/TierContext.tsx, hooks/useRecentActivityInfiniteScroll.ts
# and every fetch with a JSON body).
TIER_INFO_HEADERS = "authorization,cache-control,content-type,pragma"
ACTIVITY_HEADERS = "authorization,cache-control,expires,pragma"
JSON_HEADERS = "authorization,content-type"


@pytest.fixture
def spa_origin(settings):
    settings.CORS_ALLOWED_ORIGINS = [SPA]


def preflight(anon, path: str, method: str, headers: str):
    response = anon.options(
        path,
        HTTP_ORIGIN=SPA,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )
    assert response.status_code == 200, (path, response.status_code)
    assert response["Access-Control-Allow-Origin"] == SPA
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert set(headers.split(",")) <= allowed, (path, headers, allowed)
    return response


def spa_get(api, path: str, **headers):
    return api.get(path, HTTP_ORIGIN=SPA, **headers)


# --- authentication (contexts/AuthContext.tsx, config/auth.ts) ---------------------------------


def test_google_login_refuses_the_browser_decoded_profile_and_names_the_fix(anon, owner):
    preflight(anon, "/api/auth/google-login", "POST", "content-type")
    body = {"googleId": "1234", "email": owner.email, "name": "Owner", "picture": "x"}
    response = anon.post("/api/auth/google-login", body, format="json", HTTP_ORIGIN=SPA)
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "google_credential_required"
    assert "credential" in answer["error"] and "README" in answer["error"]
    assert "token" not in answer and "refreshToken" not in answer


def test_refresh_with_the_current_access_token_answers_token_refresh_token_expires_in(anon, owner):
    preflight(anon, "/api/auth/refresh", "POST", "content-type")
    pair = tokens_issue(user=owner)
    response = anon.post("/api/auth/refresh", {"token": pair.access}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["token"] and body["refreshToken"] and body["token"] != pair.access
    # The SPA sets its expiry to now + expiresIn and refreshes when less than 24 h are left.
    assert body["expiresIn"] == 7 * 24 * 3600
    tier_info = anon.get(
        "/api/subscription/tier-info", HTTP_AUTHORIZATION=f"Bearer {body['token']}"
    )
    assert tier_info.status_code == 200


def test_profile_answers_name_email_tier_created_at(api, owner):
    preflight(api, "/api/auth/profile", "GET", "authorization")
    body = spa_get(api, "/api/auth/profile").json()
    assert (body["email"], body["tier"]) == ("owner@example.com", "free")
    assert body["name"] and body["created_at"].startswith(str(owner.date_joined.year))


def test_logout_answers_200_with_or_without_the_token(api, anon, owner):
    preflight(anon, "/api/auth/logout", "POST", "content-type")
    # The SPA posts without its token (axios with no header): nothing to revoke, still 200.
    assert anon.post("/api/auth/logout", HTTP_ORIGIN=SPA).json() == {
        "success": True,
        "revoked": False,
    }
    assert api.post("/api/auth/logout").json()["revoked"] is True
    assert api.get("/api/subscription/tier-info").status_code == 401


# --- tier and credits --------------------------------------------------------------------------


def test_tier_info_with_the_spas_cache_busting_headers(api, anon, owner):
    preflight(anon, "/api/subscription/tier-info", "GET", TIER_INFO_HEADERS)
    services.credits_purchase_add(user=owner, credits=250, idempotency_key="cs_1")
    response = spa_get(
        api,
        "/api/subscription/tier-info?_t=1700000000000&_r=0.123",
        HTTP_CACHE_CONTROL="no-cache, no-store, must-revalidate",
        HTTP_PRAGMA="no-cache",
        HTTP_ACCEPT="*/*",  # fetch()'s default: TierContext sets none
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SPA
    # TierContext throws unless the content type includes application/json.
    assert "application/json" in response["Content-Type"]
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert data["tier"] == "free"
    credits = data["credits"]
    assert (credits["remaining"], credits["monthly"], credits["purchased"]) == (300, 50, 250)
    assert (credits["used"], credits["total"]) == (0, 300)
    assert credits["resetDate"] and 28 <= credits["daysUntilReset"] <= 31
    assert data["features"] == ["FinViz", "SEC-Insider", "Earnings", "Yahoo"]
    assert data["limits"]["watchlist"] == 3


def test_balance_answers_the_originals_top_level_shape(api, anon, owner):
    preflight(anon, "/api/credits/balance", "GET", JSON_HEADERS)
    services.credits_purchase_add(user=owner, credits=250, idempotency_key="cs_1")
    body = spa_get(api, "/api/credits/balance").json()
    assert body["success"] is True
    assert body["balance"] == {
        "remaining": 300,
        "total": 300,
        "used": 0,
        "monthly_allocation": 50,
        "purchased": 250,
        "tier": "free",
    }
    assert body["tierLimits"]["monthly_credits"] == 50
    assert body["creditCosts"]["ai_ticker_analysis"] == 1
    assert body["creditCosts"]["reddit_sentiment"] == 5


@pytest.mark.parametrize("action", ["ai_ticker_analysis", "ai_reddit_analysis"])
def test_cost_of_the_ai_actions_is_one_credit_at_the_top_level(api, anon, action):
    preflight(anon, f"/api/credits/cost/{action}", "GET", JSON_HEADERS)
    body = spa_get(api, f"/api/credits/cost/{action}").json()
    assert body["success"] is True
    assert (body["cost"], body["baseCost"], body["hasAccess"], body["tier"]) == (
        1,
        1,
        True,
        "free",
    )
    assert "error" not in body


def test_cost_of_an_unknown_action_is_400_with_error(api):
    body = api.get("/api/credits/cost/mine_bitcoin").json()
    assert body["success"] is False and body["error"]


@pytest.mark.parametrize(
    ("tier", "expected"),
    # base 5, 12, 1: elite pays ceil(x0.8), institutional ceil(x0.67), never below 1.
    [
        ("free", (5, 12, 1)),
        ("pro", (5, 12, 1)),
        ("elite", (4, 10, 1)),
        ("institutional", (4, 9, 1)),
    ],
)
def test_costs_carry_the_originals_tier_discounts(api, owner, tier, expected):
    from subscriptions.models import CreditAccount

    CreditAccount.objects.filter(user=owner).update(tier=tier)
    costs = tuple(
        api.get(f"/api/credits/cost/{action}").json()["cost"]
        for action in ("reddit_sentiment", "research_bundle", "ai_ticker_analysis")
    )
    assert costs == expected


def test_unlock_answers_the_session_at_the_top_level_and_ignores_the_clients_cost(api, anon, owner):
    preflight(anon, "/api/credits/unlock-component", "POST", JSON_HEADERS)
    response = api.post(
        "/api/credits/unlock-component", {"component": "chart", "cost": 1}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["existingSession"] is False
    assert body["creditsUsed"] == 10  # the catalogue's price, not the client's 1
    assert body["sessionId"] and body["expiresAt"]
    assert body["timeRemaining"] == 0.5  # hours: free unlocks last 30 minutes
    again = api.post("/api/credits/unlock-component", {"component": "chart"}, format="json")
    assert again.json()["existingSession"] is True and again.json()["creditsUsed"] == 0


def test_unlock_without_credits_is_402_with_required_and_remaining(api, owner):
    allowance_spent(owner)
    response = api.post(
        "/api/credits/unlock-component", {"component": "scores", "cost": 0}, format="json"
    )
    assert response.status_code == 402
    body = response.json()
    assert (body["required"], body["remaining"]) == (8, 0) and body["error"]


def test_component_access_answers_has_access_and_the_session_in_hours(api, anon, owner):
    preflight(anon, "/api/credits/component-access/chart", "GET", JSON_HEADERS)
    locked = spa_get(api, "/api/credits/component-access/chart").json()
    assert locked["success"] is True and locked["hasAccess"] is False
    unlocked = api.post("/api/credits/unlock-component", {"component": "chart"}, format="json")
    body = spa_get(api, "/api/credits/component-access/chart").json()
    assert body["hasAccess"] is True
    assert body["session"]["session_id"] == unlocked.json()["sessionId"]
    assert body["session"]["timeRemainingHours"] == 0.5


def test_recent_expirations_answer_component_expired_at_description(api, anon, owner):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    preflight(anon, "/api/credits/recent-expirations", "GET", JSON_HEADERS)
    assert spa_get(api, "/api/credits/recent-expirations").json()["expirations"] == []
    api.post("/api/credits/unlock-component", {"component": "chart"}, format="json")
    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        body = spa_get(api, "/api/credits/recent-expirations").json()
    assert body["success"] is True
    [expiration] = body["expirations"]
    assert expiration["component"] == "chart"
    assert expiration["expiredAt"] and "Price chart" in expiration["description"]


# --- activity ----------------------------------------------------------------------------------


def test_activity_feed_with_the_spas_headers(api, anon, owner):
    preflight(anon, "/api/activity", "GET", ACTIVITY_HEADERS)
    services.credits_purchase_add(user=owner, credits=250, idempotency_key="cs_1")
    response = spa_get(
        api,
        "/api/activity?page=1&limit=10",
        HTTP_CACHE_CONTROL="no-cache, no-store, must-revalidate",
        HTTP_PRAGMA="no-cache",
        HTTP_EXPIRES="0",
    )
    assert response.status_code == 200
    body = response.json()
    first = body["activities"][0]
    assert {"id", "activity_type", "title", "description", "symbol", "created_at"} <= set(first)
    pagination = body["pagination"]
    assert pagination["currentPage"] == 1 and pagination["limit"] == 10
    assert {"totalPages", "totalActivities", "hasMore"} <= set(pagination)


# --- billing -----------------------------------------------------------------------------------


def test_billing_lists_for_a_customer_without_stripe(api, anon):
    for path in ("/api/billing/subscription", "/api/billing/payment-methods"):
        preflight(anon, path, "GET", JSON_HEADERS)
    assert spa_get(api, "/api/billing/subscription").json()["data"] is None
    # Arrays in ``data``: the page calls data.map (an object there blanked the whole SPA).
    assert spa_get(api, "/api/billing/payment-methods").json()["data"] == []
    assert spa_get(api, "/api/billing/invoices").json()["data"] == []


def test_customer_portal_without_a_customer_is_400_with_error(api, anon):
    preflight(anon, "/api/billing/customer-portal", "POST", JSON_HEADERS)
    response = api.post("/api/billing/customer-portal")
    assert response.status_code == 400 and response.json()["error"]


def checkout(api, body: dict):
    return api.post("/api/billing/create-checkout-session", body, format="json", HTTP_ORIGIN=SPA)


def pay(harness, response) -> dict:
    assert response.status_code == 200, response.json()
    session_id = response.json()["sessionId"]
    assert response.json()["url"].endswith(session_id)
    harness.deliver()
    harness.emulator.complete_checkout(session_id)
    harness.deliver()
    return harness.emulator.store.get(session_id)


def returned(client, session: dict):
    """Follow Stripe's redirect to our return page (Stripe fills in the session id)."""
    from django.conf import settings

    url = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
    assert url.startswith(f"{settings.SITE_URL}/billing/return/?")
    return client.get(url.removeprefix(settings.SITE_URL))


def test_the_return_page_waits_for_the_webhook_then_goes_on_to_the_spa(api, stripe_harness):
    response = checkout(
        api,
        {
            "priceId": "pro_monthly",
            "mode": "subscription",
            "successUrl": f"{SPA}/settings/billing?success=true",
        },
    )
    session_id = response.json()["sessionId"]
    stripe_harness.deliver()
    stripe_harness.emulator.complete_checkout(session_id)
    session = stripe_harness.emulator.store.get(session_id)
    waiting = returned(api, session)  # paid, but no webhook delivered yet
    assert waiting.status_code == 200 and waiting["Cache-Control"] == "no-store"
    assert '<meta http-equiv="refresh" content="1;url=?' in waiting.content.decode()
    assert "waited=1" in waiting.content.decode()
    stripe_harness.deliver()
    landed = returned(api, session)
    assert (landed.status_code, landed["Location"]) == (302, f"{SPA}/settings/billing?success=true")


def test_the_return_page_gives_up_waiting_and_never_leaves_our_origins(anon, db):
    target = f"{SPA}/settings/usage"
    gave_up = anon.get(
        "/billing/return/", {"session_id": "cs_unknown", "next": target, "waited": "15"}
    )
    assert (gave_up.status_code, gave_up["Location"]) == (302, target)
    for bad in ("https://evil.example/", "//evil.example/x", ""):
        refused = anon.get("/billing/return/", {"session_id": "cs_x", "next": bad, "waited": "99"})
        assert refused.status_code == 400, bad


def test_checkout_by_stripe_price_id_returns_to_the_spa_and_billing_lists_fill(
    api, anon, owner, stripe_harness
):
    preflight(anon, "/api/billing/create-checkout-session", "POST", JSON_HEADERS)
    price = next(
        p for p in stripe_harness.emulator.store.all("price") if p["lookup_key"] == "pro_monthly"
    )
    session = pay(
        stripe_harness,
        checkout(
            api,
            {
                "priceId": price["id"],
                "mode": "subscription",
                "successUrl": f"{SPA}/settings/billing?success=true",
                "cancelUrl": f"{SPA}/settings/tiers?cancelled=true",
            },
        ),
    )
    # Stripe returns the customer through our page, which goes on to the SPA once the
    # webhooks have landed (here they have: the harness delivered them).
    back = returned(api, session)
    assert (back.status_code, back["Location"]) == (302, f"{SPA}/settings/billing?success=true")
    assert session["cancel_url"] == f"{SPA}/settings/tiers?cancelled=true"

    subscription = spa_get(api, "/api/billing/subscription").json()["data"]
    assert (subscription["status"], subscription["plan"]) == ("active", "pro")
    assert (subscription["amount"], subscription["currency"], subscription["interval"]) == (
        1900,
        "usd",
        "month",
    )
    assert subscription["currentPeriodEnd"] and subscription["cancelAtPeriodEnd"] is False
    [method] = spa_get(api, "/api/billing/payment-methods").json()["data"]
    assert (method["brand"], method["last4"], method["isDefault"]) == ("visa", "4242", True)
    assert {"id", "expMonth", "expYear"} <= set(method)
    [invoice] = spa_get(api, "/api/billing/invoices").json()["data"]
    assert (invoice["amount"], invoice["status"]) == (1900, "paid")
    assert {"id", "description", "date", "currency", "downloadUrl"} <= set(invoice)
    portal = api.post("/api/billing/customer-portal").json()
    assert portal["url"]


def test_credits_checkout_by_price_id_on_the_relative_url(api, owner, stripe_harness):
    from subscriptions.models import CreditAccount

    CreditAccount.objects.filter(user=owner).update(tier="pro")  # bundles: paid plans only
    price = next(
        p for p in stripe_harness.emulator.store.all("price") if p["lookup_key"] == "credits_250"
    )
    with override_settings(SITE_URL="http://testserver"):
        session = pay(
            stripe_harness,
            api.post(
                "/api/billing/create-checkout-session",
                {
                    "priceId": price["id"],
                    "mode": "payment",
                    "quantity": 1,
                    "successUrl": "http://testserver/settings/usage?credits_purchased=true",
                    "cancelUrl": "http://testserver/settings/usage?purchase_cancelled=true",
                },
                format="json",
            ),
        )
        back = returned(api, session)
    assert back["Location"] == "http://testserver/settings/usage?credits_purchased=true"
    assert CreditAccount.objects.get(user=owner).purchased_balance == 250


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/settings/billing",
        "http://localhost:5174/settings/billing",  # another port is another origin
        "javascript:alert(1)//localhost:5173",
    ],
)
def test_checkout_refuses_return_urls_off_our_origins(api, stripe_harness, url):
    response = checkout(api, {"priceId": "pro_monthly", "mode": "subscription", "successUrl": url})
    assert response.status_code == 400
    assert not stripe_harness.emulator.store.all("checkout.session")


def test_checkout_refuses_an_unknown_stripe_price(api, stripe_harness):
    response = checkout(api, {"priceId": "price_doesnotexist", "mode": "subscription"})
    assert response.status_code == 400 and response.json()["error"]
