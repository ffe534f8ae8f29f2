"""Malformed input gets a clear 400 (or 401), never a 500, and changes nothing (issue 12,
item 5). The fuzz test over every route is in test_route_fuzz.py."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from activities.models import LedgerEntry
from subscriptions import services
from subscriptions.tokens import tokens_issue

pytestmark = pytest.mark.django_db

NESTED = "[" * 100_000 + "]" * 100_000
NESTED_OBJECT = '{"a":' * 50_000 + "1" + "}" * 50_000


@pytest.mark.parametrize("body", [NESTED, NESTED_OBJECT], ids=["array", "object"])
def test_deeply_nested_json_to_register_is_a_400(anon, body, settings):
    settings.RATELIMIT_ENABLE = False
    users = get_user_model().objects.count()
    response = anon.post("/api/auth/register", body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert response.json()["success"] is False
    assert get_user_model().objects.count() == users


@pytest.mark.parametrize("body", [NESTED, NESTED_OBJECT], ids=["array", "object"])
def test_deeply_nested_json_to_spend_is_a_400(api, owner, body):
    services.credits_purchase_add(user=owner, credits=10, idempotency_key="g")
    rows = LedgerEntry.objects.filter(user=owner).count()
    response = api.post("/api/credits/spend", body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert LedgerEntry.objects.filter(user=owner).count() == rows


@pytest.mark.parametrize(
    "quantity",
    ["²", "٣", "1_0", " 1", "1 ", "+1", "-1", "0x10", "1e3", "\uff11", "9" * 40, ""],
)
def test_cost_quantity_must_be_plain_ascii_digits(api, quantity):
    response = api.get("/api/credits/cost/ai_ticker_analysis", {"quantity": quantity})
    assert response.status_code == 400, (quantity, response.status_code)
    assert response.json()["code"] == "invalid_amount"


def test_cost_quantity_in_ascii_digits_is_still_answered(api):
    response = api.get("/api/credits/cost/ai_ticker_analysis", {"quantity": "3"})
    assert response.status_code == 200 and response.json()["data"]["cost"] == 3


@pytest.mark.parametrize("path", ["/api/credits/transactions", "/api/activity"])
@pytest.mark.parametrize("value", ["٣", "1_0", " 5"])
def test_paging_numbers_must_be_plain_ascii_digits(api, path, value):
    assert api.get(path, {"limit": value}).status_code == 400


def test_refreshing_a_token_of_a_deleted_user_is_a_401(settings):
    settings.RATELIMIT_ENABLE = False
    # A user who never used credits has no ledger rows holding on to them, so can be deleted.
    user = get_user_model().objects.create_user(username="gone@example.com", password="x")
    refresh = tokens_issue(user=user).refresh
    user.delete()
    response = APIClient().post("/api/auth/token/refresh", {"refresh": refresh}, format="json")
    assert response.status_code == 401, response.content
    assert response.json()["success"] is False


def test_refreshing_a_token_of_a_live_user_still_works(owner, settings):
    settings.RATELIMIT_ENABLE = False
    refresh = tokens_issue(user=owner).refresh
    response = APIClient().post("/api/auth/token/refresh", {"refresh": refresh}, format="json")
    assert response.status_code == 200 and response.json()["access"]
