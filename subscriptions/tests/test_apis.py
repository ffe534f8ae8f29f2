"""The SPA's REST API, through HTTP."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from activities.models import LedgerEntry
from conftest import bearer_client
from subscriptions import catalogue, services
from subscriptions.catalogue import FREE_TIER
from subscriptions.models import CreditAccount
from subscriptions.tests.factories import PASSWORD, allowance_spent
from subscriptions.tokens import tokens_issue

FREE = FREE_TIER.monthly_credits  # every account opens with the free allowance


def give_credits(user, credits=100):
    services.credits_purchase_add(user=user, credits=credits, idempotency_key=f"gift:{user.pk}")


def spend(api, action="ai_ticker_analysis", quantity=1, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post(
        "/api/credits/spend", {"action": action, "quantity": quantity}, format="json", **headers
    )


# --- auth -----------------------------------------------------------------------------------


def test_register_returns_tokens_and_opens_a_free_account(anon, db):
    response = anon.post(
        "/api/auth/register",
        {"email": "New@Example.com", "password": "a long enough passphrase"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()["data"]
    assert body["user"]["email"] == "new@example.com"
    assert CreditAccount.objects.get(user_id=body["user"]["id"]).tier == "free"
    tier_info = anon.get(
        "/api/subscription/tier-info", HTTP_AUTHORIZATION=f"Bearer {body['access']}"
    )
    assert tier_info.status_code == 200


def test_register_refuses_a_taken_email_and_weak_passwords(anon, owner):
    taken = anon.post(
        "/api/auth/register", {"email": "OWNER@example.com", "password": PASSWORD}, format="json"
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "email_taken")
    weak = anon.post(
        "/api/auth/register", {"email": "x@example.com", "password": "123"}, format="json"
    )
    assert (weak.status_code, weak.json()["code"]) == (400, "registration_invalid")


def test_token_with_email_and_password(anon, owner):
    ok = anon.post(
        "/api/auth/token", {"email": "owner@example.com", "password": PASSWORD}, format="json"
    )
    assert ok.status_code == 200 and ok.json()["access"]
    refreshed = anon.post(
        "/api/auth/token/refresh", {"refresh": ok.json()["refresh"]}, format="json"
    )
    assert refreshed.status_code == 200 and refreshed.json()["access"]
    bad = anon.post(
        "/api/auth/token", {"email": "owner@example.com", "password": "nope"}, format="json"
    )
    assert bad.status_code == 401


def test_refresh_token_is_not_an_access_token(anon, owner):
    refresh = tokens_issue(user=owner).refresh
    response = anon.get("/api/credits/balance", HTTP_AUTHORIZATION=f"Bearer {refresh}")
    assert response.status_code == 401


def test_expired_and_foreign_tokens_are_refused(anon, owner):
    # simplejwt annotates the encoded token as a Token; it is a str
    expired = AccessToken(tokens_issue(user=owner).access)  # type: ignore[arg-type]
    expired.set_exp(lifetime=-timedelta(minutes=1))
    assert (
        anon.get("/api/credits/balance", HTTP_AUTHORIZATION=f"Bearer {expired}").status_code == 401
    )
    with override_settings():
        from rest_framework_simplejwt.backends import TokenBackend

        forged = TokenBackend("HS256", "another-signing-key-of-enough-length-1234567890").encode(
            {"token_type": "access", "user_id": str(owner.pk), "exp": 9999999999, "jti": "x"}
        )
    assert (
        anon.get("/api/credits/balance", HTTP_AUTHORIZATION=f"Bearer {forged}").status_code == 401
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/subscription/tier-info",
        "/api/subscription/usage-stats",
        "/api/credits/balance",
        "/api/credits/transactions",
        "/api/credits/active-sessions",
        "/api/credits/recent-expirations",
        "/api/credits/cost/ai_ticker_analysis",
        "/api/credits/component-access/chart",
        "/api/activity",
    ],
)
def test_reads_need_a_login(anon, db, path):
    response = anon.get(path)
    assert response.status_code == 401
    assert response.json()["success"] is False


@pytest.mark.parametrize(
    "path",
    [
        "/api/credits/spend",
        "/api/credits/holds",
        "/api/credits/holds/1/capture",
        "/api/credits/holds/1/release",
        "/api/credits/unlock-component",
    ],
)
def test_writes_need_a_login(anon, db, path):
    assert anon.post(path, {}, format="json").status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/api/subscription/simulate-upgrade",
        "/api/credits/add-credits",
        "/api/billing/reset-stripe-data",
        "/api/credits/cleanup",
        "/api/debug",
    ],
)
def test_the_originals_unsafe_endpoints_do_not_exist(api, path):
    assert api.post(path, {"credits": 1000}, format="json").status_code == 404


# --- tier info ------------------------------------------------------------------------------


def test_tier_info_shape(api, owner):
    give_credits(owner, 250)
    body = api.get("/api/subscription/tier-info").json()
    assert body["success"] is True
    data = body["data"]
    assert data["tier"] == "free"
    assert set(data["credits"]) >= {
        "monthly",
        "purchased",
        "used",
        "total",
        "remaining",
        "resetDate",
        "daysUntilReset",
    }
    assert data["credits"]["purchased"] == 250 and data["credits"]["remaining"] == FREE + 250
    assert data["limits"]["watchlist"] == 3
    assert data["features"] == ["FinViz", "SEC-Insider", "Earnings", "Yahoo"]
    assert "usage" in data


def test_tier_info_costs_one_query_and_304s_on_an_unchanged_etag(api, owner):
    api.get("/api/subscription/tier-info")  # warm the connection
    with CaptureQueriesContext(connection) as queries:
        first = api.get("/api/subscription/tier-info")
    assert first.status_code == 200
    assert len(queries) <= 2
    etag = first["ETag"]
    # The tag is the hash of the very bytes sent.
    assert etag == '"' + hashlib.blake2b(first.content, digest_size=16).hexdigest() + '"'
    with CaptureQueriesContext(connection) as queries:
        cached = api.get("/api/subscription/tier-info", HTTP_IF_NONE_MATCH=etag)
    assert cached.status_code == 304
    assert len(queries) <= 1
    give_credits(owner, 5)
    changed = api.get("/api/subscription/tier-info", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_available_tiers_is_public(anon, db):
    body = anon.get("/api/subscription/available-tiers").json()["data"]
    assert [tier["id"] for tier in body["tiers"]] == [*catalogue.TIERS]
    credits = {tier["id"]: tier["monthlyCredits"] for tier in body["tiers"]}
    # The original's allowances (a tier added to the catalogue is listed too).
    assert (
        credits.items() >= {"free": 50, "pro": 500, "elite": 2000, "institutional": 10000}.items()
    )
    assert body["bundles"][0]["credits"] == 250 and body["bundles"][0]["priceCents"] == 1000


def test_usage_stats_counts_spending_by_action(api, owner):
    give_credits(owner)
    spend(api, "finviz_sentiment", 2)
    spend(api, "ai_ticker_analysis", 3)
    data = api.get("/api/subscription/usage-stats").json()["data"]
    assert data["byAction"] == {"finviz_sentiment": 6, "ai_ticker_analysis": 3}
    assert data["spentThisPeriod"] == 9


# --- spending -------------------------------------------------------------------------------


def test_cost_is_decided_by_the_server(api):
    assert api.get("/api/credits/cost/reddit_sentiment?quantity=3").json()["data"]["cost"] == 15
    assert api.get("/api/credits/cost/nope").status_code == 400
    assert api.get("/api/credits/cost/reddit_sentiment?quantity=x").status_code == 400


def test_spend_charges_and_reports_the_balance(api, owner):
    give_credits(owner)
    response = spend(api, "yahoo_sentiment", 2, key="req-1")
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["cost"], data["remaining"]) == (4, FREE + 96)


def test_spend_retry_with_the_same_key_charges_once_and_answers_the_same(api, owner):
    give_credits(owner)
    first = spend(api, "yahoo_sentiment", 2, key="req-1")
    spend(api, "ai_ticker_analysis", 1, key="req-2")
    retry = spend(api, "yahoo_sentiment", 2, key="req-1")
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert CreditAccount.objects.get(user=owner).remaining == FREE + 95
    conflict = spend(api, "yahoo_sentiment", 3, key="req-1")
    assert conflict.status_code == 409


def test_spend_without_credits_is_402_with_required_and_remaining(api, owner):
    allowance_spent(owner)
    response = spend(api, "finviz_sentiment", 1)
    assert response.status_code == 402
    assert response.json() == {
        "success": False,
        "error": "Insufficient credits",
        "code": "insufficient_credits",
        "required": 3,
        "remaining": 0,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"action": "mine_bitcoin", "quantity": 1},
        {"action": "ai_ticker_analysis", "quantity": 0},
        {"action": "ai_ticker_analysis", "quantity": -5},
        {"action": "ai_ticker_analysis", "quantity": 10**12},
        {"action": "ai_ticker_analysis", "quantity": "lots"},
        {"action": ["ai_ticker_analysis"], "quantity": 1},
        {"quantity": 1},
        [],
        "just a string",
    ],
)
def test_spend_bad_input_is_a_clear_4xx_and_changes_nothing(api, owner, body):
    give_credits(owner)
    response = api.post("/api/credits/spend", body, format="json")
    assert 400 <= response.status_code < 500
    assert response.json()["success"] is False
    assert CreditAccount.objects.get(user=owner).remaining == FREE + 100


def test_malformed_json_is_400(api, owner):
    response = api.post("/api/credits/spend", b"{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["success"] is False


def test_an_oversized_idempotency_key_is_refused(api, owner):
    give_credits(owner)
    assert spend(api, key="k" * 101).status_code == 400


def test_spend_is_rate_limited_with_retry_after(api, owner, rate_limits_on):
    give_credits(owner, 1000)
    statuses = [spend(api).status_code for _ in range(125)]
    assert statuses.count(429) == 5
    refused = spend(api)
    assert refused.status_code == 429 and refused["Retry-After"]


# --- holds ----------------------------------------------------------------------------------


def test_hold_reserve_capture_and_release(api, owner):
    give_credits(owner)
    hold = api.post(
        "/api/credits/holds", {"action": "reddit_sentiment", "quantity": 2}, format="json"
    )
    assert hold.status_code == 201
    hold_id = hold.json()["data"]["id"]
    assert api.get("/api/credits/balance").json()["data"]["remaining"] == FREE + 90
    released = api.post(f"/api/credits/holds/{hold_id}/release")
    assert released.json()["data"]["status"] == "released"
    assert api.get("/api/credits/balance").json()["data"]["remaining"] == FREE + 100
    assert api.post(f"/api/credits/holds/{hold_id}/capture").status_code == 409


def test_a_hold_of_another_user_is_not_found(api, other_user):
    give_credits(other_user)
    hold = services.credits_hold_create(
        user=other_user, action="finviz_sentiment", quantity=1, idempotency_key="h"
    )
    assert api.post(f"/api/credits/holds/{hold.pk}/capture").status_code == 404
    assert api.post(f"/api/credits/holds/{hold.pk}/release").status_code == 404
    assert CreditAccount.objects.get(user=other_user).remaining == FREE + 97


# --- unlocks --------------------------------------------------------------------------------


def test_unlock_component_charges_once_and_shows_the_session(api, owner):
    give_credits(owner)
    first = api.post("/api/credits/unlock-component", {"component": "chart"}, format="json")
    second = api.post("/api/credits/unlock-component", {"component": "chart"}, format="json")
    assert first.json()["data"]["charged"] is True
    assert first.json()["data"]["creditsRemaining"] == FREE + 90
    assert second.json()["data"]["charged"] is False
    assert second.json()["data"]["creditsRemaining"] == FREE + 90
    access = api.get("/api/credits/component-access/chart").json()["data"]
    assert access["hasAccess"] is True and access["session"]["secondsRemaining"] > 1700
    sessions = api.get("/api/credits/active-sessions").json()["data"]["sessions"]
    assert [s["component"] for s in sessions] == ["chart"]


def test_unlock_gated_component_needs_pro(api, owner):
    give_credits(owner)
    response = api.post("/api/credits/unlock-component", {"component": "reddit"}, format="json")
    assert response.status_code == 403
    body = response.json()
    assert body["feature"] == "reddit" and body["tier"] == "free"
    assert body["requiredTiers"] == [*catalogue.tiers_from("pro")]


def test_unknown_component_is_400(api):
    assert (
        api.post("/api/credits/unlock-component", {"component": "x"}, format="json").status_code
        == 400
    )
    assert api.get("/api/credits/component-access/x").status_code == 400


def test_recent_expirations_lists_ended_unlocks_and_records_the_activity(api, owner):
    give_credits(owner)
    services.component_unlock(user=owner, component="scores")
    past = timezone.now() - timedelta(hours=1)
    owner.component_unlocks.update(unlocked_at=past - timedelta(minutes=30), expires_at=past)
    data = api.get("/api/credits/recent-expirations").json()["data"]
    assert [e["component"] for e in data["expirations"]] == ["scores"]
    feed = api.get("/api/activity?type=research_expired").json()
    assert feed["pagination"]["totalActivities"] == 1


# --- transactions and activity --------------------------------------------------------------


def test_transactions_are_newest_first_with_limit_and_offset(api, owner):
    give_credits(owner)
    for n in range(3):
        spend(api, "ai_ticker_analysis", n + 1)
    page = api.get("/api/credits/transactions?limit=2").json()["data"]
    assert [t["amount"] for t in page["transactions"]] == [-3, -2]
    assert page["hasMore"] is True
    rest = api.get("/api/credits/transactions?limit=2&offset=2").json()["data"]
    assert [t["amount"] for t in rest["transactions"]] == [-1, 100]
    keyset = api.get(f"/api/credits/transactions?limit=2&before={page['nextBefore']}").json()
    assert [t["amount"] for t in keyset["data"]["transactions"]] == [-1, 100]
    assert api.get("/api/credits/transactions?limit=0").status_code == 400


def test_transactions_never_show_another_users_rows(api, owner, other_user):
    give_credits(other_user)
    rows = api.get("/api/credits/transactions").json()["data"]["transactions"]
    assert [row["type"] for row in rows] == ["period_reset"]  # the owner's own opening grant


def test_activity_feed_counts_up_to_a_cap_and_says_so(api, owner, monkeypatch):
    from activities import apis as activity_apis

    monkeypatch.setattr(activity_apis, "COUNT_CAP", 2)
    for n in range(3):
        services.credits_purchase_add(user=owner, credits=10, idempotency_key=f"p{n}")
    with CaptureQueriesContext(connection) as queries:
        pagination = api.get("/api/activity?page=1&limit=1").json()["pagination"]
    assert pagination["totalActivities"] == 2 and pagination["totalCapped"] is True
    assert pagination["totalPages"] == 2 and pagination["hasMore"] is True
    assert "LIMIT 3" in queries[-2]["sql"]  # the count stops at the cap


def test_activity_feed_paginates(api, owner):
    for n in range(3):
        services.credits_purchase_add(user=owner, credits=10, idempotency_key=f"p{n}")
    body = api.get("/api/activity?page=1&limit=2").json()
    assert [a["activity_type"] for a in body["activities"]] == ["credits_purchased"] * 2
    assert set(body["activities"][0]) == {
        "id",
        "activity_type",
        "title",
        "description",
        "symbol",
        "created_at",
    }
    assert body["pagination"] == {
        "currentPage": 1,
        "totalPages": 2,
        "totalActivities": 3,
        "totalCapped": False,
        "hasMore": True,
        "limit": 2,
    }
    assert body["nextBefore"] == body["activities"][-1]["id"]
    last = api.get(f"/api/activity?before={body['nextBefore']}&limit=2").json()
    assert len(last["activities"]) == 1 and last["activities"][0]["id"] < body["nextBefore"]
    assert last["pagination"]["hasMore"] is False and last["nextBefore"] is None
    page2 = api.get("/api/activity?page=2&limit=2").json()
    assert page2["activities"] == last["activities"] and page2["pagination"]["hasMore"] is False
    assert api.get("/api/activity?page=0").status_code == 400
    assert api.get("/api/activity?type=nonsense").status_code == 400


# --- project surface ------------------------------------------------------------------------


def test_healthz_reports_the_database(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["database"] == "ok"


def test_healthz_is_503_when_the_database_is_unreachable(client, db, monkeypatch):
    from django.db import OperationalError

    class Unreachable:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr("hrvstr.health.connection", Unreachable())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_openapi_schema_and_offline_docs(client, db):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/credits/spend" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assets = re.findall(rb'(?:src|href)="([^"]+)"', docs.content)
    # Static files, and the page's start-up script served by the docs view itself (a file
    # rather than inline code, for the Content-Security-Policy): nothing from a CDN.
    assert assets and all(url.startswith((b"/static/", b"/api/docs/?")) for url in assets), assets
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"] == "application/javascript"
    assert b"/api/schema/" in script.content


@override_settings(CORS_ALLOWED_ORIGINS=["http://localhost:5173"])
def test_cors_allows_the_listed_spa_origin_only(api):
    allowed = api.options(
        "/api/credits/spend",
        HTTP_ORIGIN="http://localhost:5173",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,idempotency-key",
    )
    assert allowed["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "idempotency-key" in allowed["Access-Control-Allow-Headers"]
    got = api.get("/api/subscription/tier-info", HTTP_ORIGIN="http://localhost:5173")
    assert "etag" in got["Access-Control-Expose-Headers"].lower()
    refused = api.get("/api/subscription/tier-info", HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in refused


def test_ledger_rows_record_the_spend(api, owner):
    give_credits(owner)
    allowance_spent(owner)
    spend(api, "finviz_sentiment", 1, key="abc")
    entry = LedgerEntry.objects.filter(user=owner, kind="spend", source="abc").get()
    assert (entry.purchased_delta, entry.actor, entry.source) == (-3, "user", "abc")


def test_login_is_rate_limited_per_address(anon, db, rate_limits_on):
    statuses = [
        anon.post(
            "/api/auth/token", {"email": "x@example.com", "password": "wrong"}, format="json"
        ).status_code
        for _ in range(12)
    ]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]


def test_an_idempotency_key_is_honoured_however_late_the_retry_comes(api, owner):
    import time_machine

    give_credits(owner)
    first = spend(api, "yahoo_sentiment", 2, key="slow-retry")
    with time_machine.travel(timezone.now() + timedelta(days=400)):
        retry = spend(bearer_client(owner), "yahoo_sentiment", 2, key="slow-retry")
    assert retry.json() == first.json()
    assert LedgerEntry.objects.filter(user=owner, kind="spend").count() == 1


def test_the_api_answers_json_whatever_accept_says_and_the_schema_still_negotiates(api, anon):
    for accept in ("text/html", "application/xml", "*/*", "text/csv, application/pdf"):
        response = api.get("/api/subscription/tier-info", HTTP_ACCEPT=accept)
        assert response.status_code == 200, accept
        assert response["Content-Type"] == "application/json"
        assert response.json()["success"] is True
    # Parameters still reach the renderer (DRF's JSON renderer indents on request).
    indented = api.get("/api/credits/balance", HTTP_ACCEPT="application/json; indent=2")
    assert indented.status_code == 200 and b'\n  "' in indented.content
    assert api.get("/api/subscription/tier-info?format=xml").status_code == 404
    assert api.post("/api/credits/spend", "a=1", content_type="text/plain").status_code == 415
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200 and schema["Content-Type"].startswith(
        "application/vnd.oai.openapi+json"
    )
