"""The JWT user lookup that brings the credit account along (``hrvstr.auth``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from hrvstr.auth import token_verified, user_with_account
from hrvstr.testing import prepared_statement_uses
from subscriptions.models import CreditAccount
from subscriptions.tokens import tokens_issue, tokens_revoke_all


def test_it_loads_the_user_and_the_account_in_one_query(owner):
    expected = CreditAccount.objects.get(user=owner)
    user_with_account(owner.pk)  # compile once
    with CaptureQueriesContext(connection) as queries:
        user = user_with_account(str(owner.pk))
        assert user is not None and user == owner and user.email == owner.email and user.is_active
        account = user.credit_account
        assert account.user is user
        assert account.period_end.tzinfo is not None
    assert len(queries) == 1
    assert {
        f.attname: getattr(account, f.attname) for f in CreditAccount._meta.concrete_fields
    } == {f.attname: getattr(expected, f.attname) for f in CreditAccount._meta.concrete_fields}


def test_it_knows_without_a_query_that_an_account_is_missing(owner):
    CreditAccount.objects.filter(user=owner).delete()
    with CaptureQueriesContext(connection) as queries:
        user = user_with_account(owner.pk)
        assert not hasattr(user, "credit_account")
    assert len(queries) == 1


def test_it_finds_no_one_for_unknown_or_malformed_ids(db):
    assert user_with_account(987654) is None
    assert user_with_account("not-a-number") is None
    assert user_with_account(2**31) is None  # beyond the id column's type


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements: PostgreSQL")
def test_on_postgresql_every_request_reuses_one_prepared_lookup(api, owner, other_user):
    """PostgreSQL plans the lookup's join once per connection, not on every request."""
    lookup = 'FROM "auth_user" LEFT OUTER JOIN "subscriptions_creditaccount"'
    for _ in range(8):
        assert api.get("/api/subscription/tier-info").status_code == 200
    assert user_with_account(other_user.pk) == other_user
    [uses] = prepared_statement_uses(lookup)  # one statement, whichever user it looks up
    assert uses >= 4  # executed as prepared: one Parse, then Bind/Execute only
    with CaptureQueriesContext(connection) as queries:  # still counted as Django's queries are
        assert api.get("/api/subscription/tier-info").status_code == 200
    assert len(queries) == 1
    assert prepared_statement_uses(lookup) == [uses + 1]


def test_a_user_without_an_account_gets_one_on_first_read(api, owner):
    CreditAccount.objects.filter(user=owner).delete()
    assert api.get("/api/subscription/tier-info").json()["data"]["tier"] == "free"
    assert CreditAccount.objects.filter(user=owner).exists()


def _token(claims: dict) -> str:
    backend = TokenBackend(api_settings.ALGORITHM, api_settings.SIGNING_KEY)
    return backend.encode({"token_type": "access", "exp": 9999999999, "jti": "j", **claims})


def test_tokens_for_deleted_inactive_or_malformed_users_are_401(anon, owner, other_user):
    other_user.is_active = False
    other_user.save(update_fields=["is_active"])
    for token in (
        _token({"user_id": "987654"}),
        _token({"user_id": "abc"}),
        _token({}),
        str(AccessToken.for_user(other_user)),
    ):
        response = anon.get("/api/subscription/tier-info", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 401, token


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """The tokens simplejwt decodes (verifies) from now on."""
    seen: list[str] = []
    decode = TokenBackend.decode

    def counted(self, token, *args, **kwargs):
        seen.append(token)
        return decode(self, token, *args, **kwargs)

    monkeypatch.setattr(TokenBackend, "decode", counted)
    return seen


def _get(client, token: str):
    return client.get("/api/subscription/tier-info", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_token_is_verified_once_per_process_and_its_expiry_on_every_request(anon, owner, decoded):
    token_verified.cache_clear()
    token = tokens_issue(user=owner).access
    assert _get(anon, token).status_code == 200
    assert _get(anon, token).status_code == 200
    assert len(decoded) == 1

    lifetime = api_settings.ACCESS_TOKEN_LIFETIME
    with time_machine.travel(timezone.now() + lifetime + timedelta(seconds=1)):
        expired_after_use = _get(anon, token)
        token_verified.cache_clear()
        expired_never_seen = _get(anon, token)
    # The same answer simplejwt gives a token it has never seen.
    assert expired_after_use.status_code == expired_never_seen.status_code == 401
    assert expired_after_use.json() == expired_never_seen.json()


def test_a_verified_token_is_still_revoked_at_once(anon, owner):
    token = tokens_issue(user=owner).access
    assert _get(anon, token).status_code == 200
    tokens_revoke_all(user_id=owner.pk, reason="logout")
    assert _get(anon, token).status_code == 401


def test_only_the_exact_verified_bytes_pass(anon, owner):
    token = tokens_issue(user=owner).access
    assert _get(anon, token).status_code == 200
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert _get(anon, f"{header}.{payload}.{flipped}").status_code == 401
    assert _get(anon, f"{header}.{payload}.{signature}x").status_code == 401
    assert _get(anon, token).status_code == 200


def test_a_change_of_token_settings_verifies_tokens_afresh(anon, owner, settings, decoded):
    token = tokens_issue(user=owner).access
    assert _get(anon, token).status_code == 200
    decoded.clear()
    settings.SIMPLE_JWT = settings.SIMPLE_JWT | {"LEEWAY": 1}
    assert _get(anon, token).status_code == 200
    assert _get(anon, token).status_code == 200
    assert len(decoded) == 1
