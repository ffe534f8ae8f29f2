"""The authorization matrix: every route, every kind of caller that must not get in.

Routes are read from the URL resolver, not listed by hand, so a new endpoint (or page) is in
the matrix the day it is added. Each is tried anonymously, with an expired access JWT, with a
JWT signed by another key, and with a refresh token used as an access token; then as another
user against the owner's objects; staff-only actions refuse non-staff.
"""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from activities.models import LedgerEntry
from conftest import bearer_client
from hrvstr.tests.routes import PUBLIC, routes
from subscriptions import services
from subscriptions.models import CreditAccount, CreditHold
from subscriptions.tokens import tokens_issue

ROUTES = routes()
PROTECTED = [path for path in ROUTES if path not in PUBLIC]


def test_every_public_route_still_exists():
    # A renamed page must not leave a stale exemption behind while its new path goes untested.
    assert set(ROUTES) >= PUBLIC


def test_the_matrix_covers_the_api():
    assert "/api/credits/spend" in PROTECTED and "/api/billing/change-plan" in PROTECTED
    assert len(PROTECTED) >= 20


def expired_token(user) -> str:
    # valid in every other way; simplejwt annotates the encoded token as a Token, it is a str
    token = AccessToken(tokens_issue(user=user).access)  # type: ignore[arg-type]
    token.set_exp(lifetime=-timedelta(minutes=1))
    return str(token)


def foreign_key_token(user) -> str:
    access = tokens_issue(user=user).access
    payload = dict(AccessToken(access).payload)  # type: ignore[arg-type]  # a str, as above
    return jwt.encode(payload, "someone-elses-signing-key-0123456789abcdef", algorithm="HS256")


def refresh_as_access(user) -> str:
    return tokens_issue(user=user).refresh


def client_with(token: str | None) -> APIClient:
    client = APIClient()
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


CALLERS = {
    "anonymous": lambda user: None,
    "expired": expired_token,
    "foreign-key": foreign_key_token,
    "refresh-as-access": refresh_as_access,
    "garbage": lambda user: "not.a.jwt",
}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("path", PROTECTED)
def test_protected_routes_refuse_callers_without_a_valid_access_token(
    owner, caller, path, settings
):
    settings.RATELIMIT_ENABLE = False
    client = client_with(CALLERS[caller](owner))
    before = list(CreditAccount.objects.values_list("monthly_used", "purchased_balance"))
    ledger = LedgerEntry.objects.count()
    for method in ("get", "post"):
        response = getattr(client, method)(path, {}, format="json")
        assert response.status_code in {401, 403, 405} or (
            300 <= response.status_code < 400  # a page sending the visitor to log in
        ), (caller, method, path, response.status_code)
        if response.status_code in {401, 403}:
            assert "data" not in response.json() or response.json().get("success") is False
    assert list(CreditAccount.objects.values_list("monthly_used", "purchased_balance")) == before
    assert LedgerEntry.objects.count() == ledger


def test_a_token_of_a_deleted_user_is_refused(db):
    # A user with a ledger cannot be deleted (PROTECT keeps the books); one without can.
    user = get_user_model().objects.create_user("gone@example.com", "gone@example.com")
    client = bearer_client(user)
    refresh = tokens_issue(user=user).refresh
    user.delete()
    assert client.get("/api/credits/balance").status_code == 401
    refused = client.post("/api/auth/refresh", {"refreshToken": refresh}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (401, "token_invalid")


def test_a_token_of_a_deactivated_user_is_refused(owner):
    client = bearer_client(owner)
    owner.is_active = False
    owner.save()
    assert client.get("/api/credits/balance").status_code == 401


# --- another user never reads or changes the owner's data -----------------------------------


@pytest.fixture
def owners_things(owner):
    """The owner has credits, a spend, an open hold and an unlock."""
    services.credits_purchase_add(user=owner, credits=100, idempotency_key="grant:owner")
    services.credits_spend(
        user=owner, action="ai_ticker_analysis", quantity=3, idempotency_key="spend:owner"
    )
    hold = services.credits_hold_create(
        user=owner, action="finviz_sentiment", quantity=2, idempotency_key="hold:owner"
    )
    return hold


def test_another_user_cannot_capture_or_release_the_owners_hold(owner, other_user, owners_things):
    hold = owners_things
    other = bearer_client(other_user)
    for action in ("capture", "release"):
        response = other.post(f"/api/credits/holds/{hold.pk}/{action}")
        assert response.status_code == 404, action
    assert CreditHold.objects.get(pk=hold.pk).status == "open"
    account = CreditAccount.objects.get(user=owner)
    assert account.purchased_balance == 100 - 3 - 6 or account.remaining >= 0


def test_another_user_sees_only_their_own_ledger_activity_and_balance(
    owner, other_user, owners_things
):
    other = bearer_client(other_user)
    owner_ids = set(LedgerEntry.objects.filter(user=owner).values_list("pk", flat=True))
    body = other.get("/api/credits/transactions?limit=100").json()
    seen = {row.get("id") or row.get("transactionId") for row in _rows(body)}
    assert not seen & owner_ids
    for path in (
        "/api/credits/balance",
        "/api/subscription/tier-info",
        "/api/subscription/usage-stats",
        "/api/activity",
        "/api/credits/active-sessions",
        "/api/billing/subscription",
    ):
        text = other.get(path).content.decode()
        assert "owner@example.com" not in text, path
    assert other.get("/api/credits/balance").json()["data"]["remaining"] == 50  # their own


def _rows(body) -> list[dict]:
    data = body.get("data", body)
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, list):
                return value
    return data if isinstance(data, list) else []


def test_a_spend_idempotency_key_of_the_owner_does_not_replay_for_another_user(
    owner, other_user, owners_things
):
    other = bearer_client(other_user)
    services.credits_purchase_add(user=other_user, credits=10, idempotency_key="grant:other")
    response = other.post(
        "/api/credits/spend",
        {"action": "ai_ticker_analysis", "quantity": 1},
        format="json",
        HTTP_IDEMPOTENCY_KEY="spend:owner",
    )
    assert response.status_code == 200
    assert (
        response.json()["data"]["remaining"] == 50 + 10 - 1
    )  # charged to them, not a replay of the owner's


# --- staff-only ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/subscriptions/creditaccount/",
        "/admin/activities/ledgerentry/",
        "/admin/djstripe/webhookeventtrigger/",
    ],
)
def test_the_admin_refuses_a_logged_in_non_staff_user(client, owner, path):
    client.force_login(owner)
    response = client.get(path)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_actions_refuse_non_staff(owner, other_user):
    from djstripe.models import WebhookEventTrigger

    from billing import services as billing_services
    from hrvstr.errors import DomainError

    trigger = WebhookEventTrigger.objects.create(
        remote_ip="127.0.0.1", body="{}", headers={}, valid=True, processed=False
    )
    with pytest.raises(DomainError) as refused:
        billing_services.webhook_event_replay(trigger=trigger, staff_user=other_user)
    assert refused.value.code == "staff_only"
    account = CreditAccount.objects.get(user=owner)
    with pytest.raises(DomainError):
        billing_services.account_resync_from_stripe(account=account, staff_user=other_user)


def test_jwts_are_signed_with_a_key_from_the_environment_not_a_literal():
    assert django_settings.SIMPLE_JWT["SIGNING_KEY"]
    assert django_settings.SIMPLE_JWT["SIGNING_KEY"] != "someone-elses-signing-key-0123456789abcdef"
