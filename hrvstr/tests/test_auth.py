"""The JWT user lookup that brings the credit account along (``hrvstr.auth``)."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from hrvstr.auth import user_with_account
from subscriptions.models import CreditAccount


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
