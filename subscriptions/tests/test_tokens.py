"""The JWT life cycle: refresh, rotation, reuse detection, revocation (logout, password change
and reset, deactivation, staff), through HTTP."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from subscriptions.models import RefreshFamily
from subscriptions.tests.factories import PASSWORD
from subscriptions.tokens import tokens_issue

TIER_INFO = "/api/subscription/tier-info"


def works(token: str) -> bool:
    response = APIClient().get(TIER_INFO, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code in {200, 401}
    return response.status_code == 200


def refresh(anon, **body):
    return anon.post("/api/auth/refresh", body, format="json")


def test_sign_in_with_a_password_answers_the_spas_names_too(anon, owner):
    body = anon.post(
        "/api/auth/token", {"email": owner.email, "password": PASSWORD}, format="json"
    ).json()
    assert body["token"] == body["access"] and body["refreshToken"] == body["refresh"]
    assert body["expiresIn"] == 7 * 24 * 3600 and body["user"]["tier"] == "free"
    assert works(body["token"])


def test_a_refresh_token_rotates_and_the_old_one_is_spent(anon, owner):
    first = tokens_issue(user=owner)
    second = refresh(anon, refreshToken=first.refresh).json()
    assert second["refreshToken"] != first.refresh
    third = refresh(anon, refreshToken=second["refreshToken"])
    assert third.status_code == 200
    assert works(third.json()["token"])


def test_a_reused_refresh_token_revokes_its_family_and_every_token_of_the_user(anon, owner):
    other_device = tokens_issue(user=owner)
    stolen = tokens_issue(user=owner)
    legit = refresh(anon, refreshToken=stolen.refresh).json()
    reuse = refresh(anon, refreshToken=stolen.refresh)
    assert (reuse.status_code, reuse.json()["code"]) == (401, "token_reused")
    assert not RefreshFamily.objects.filter(user=owner, revoked_at__isnull=True).exists()
    # The family is dead: the newer pair is refused, its access token too (it lives for days,
    # so the user's generation is bumped: every device signs in again).
    assert refresh(anon, refreshToken=legit["refreshToken"]).status_code == 401
    assert not works(legit["token"])
    assert not works(other_device.access)
    assert works(tokens_issue(user=owner).access)  # signing in again works


def test_an_access_token_refreshes_once_like_a_refresh_token(anon, owner):
    pair = tokens_issue(user=owner)
    assert refresh(anon, token=pair.access).status_code == 200
    again = refresh(anon, token=pair.access)
    assert (again.status_code, again.json()["code"]) == (401, "token_reused")


@pytest.mark.parametrize(
    "body",
    [{}, {"token": None}, {"token": ""}, {"token": "garbage"}, {"refreshToken": "x.y.z"}],
)
def test_refresh_refuses_what_is_not_a_token(anon, db, body):
    assert refresh(anon, **body).status_code in {400, 401}


def test_an_expired_access_token_cannot_be_refreshed(anon, owner):
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken

    # valid in every other way; simplejwt annotates the encoded token as a Token, it is a str
    token = AccessToken(tokens_issue(user=owner).access)  # type: ignore[arg-type]
    token.set_exp(lifetime=-timedelta(seconds=1))
    response = refresh(anon, token=str(token))
    assert (response.status_code, response.json()["code"]) == (401, "token_invalid")


def test_a_refresh_token_is_no_access_token_and_an_access_token_no_refresh_token(anon, owner):
    pair = tokens_issue(user=owner)
    assert not works(pair.refresh)
    assert refresh(anon, refreshToken=pair.access).status_code == 401
    assert refresh(anon, token=pair.refresh).status_code == 401


def test_logout_revokes_every_token_of_the_user(anon, owner):
    phone, laptop = tokens_issue(user=owner), tokens_issue(user=owner)
    response = anon.post("/api/auth/logout", HTTP_AUTHORIZATION=f"Bearer {phone.access}")
    assert response.json()["revoked"] is True
    for pair in (phone, laptop):
        assert not works(pair.access)
        assert refresh(anon, refreshToken=pair.refresh).json()["code"] == "token_revoked"
    assert works(tokens_issue(user=owner).access)  # signing in again works


def test_a_password_change_revokes_every_token(anon, owner):
    pair = tokens_issue(user=owner)
    owner.set_password("a brand new passphrase 42")
    owner.save()
    assert not works(pair.access)
    assert refresh(anon, token=pair.access).status_code == 401


def test_a_password_reset_through_the_pages_revokes_every_token(client, anon, owner):
    pair = tokens_issue(user=owner)
    client.post("/password-reset/", {"email": owner.email})
    found = re.search(r"/reset/[^/\s]+/[^/\s]+/", str(mail.outbox[0].body))
    assert found, mail.outbox[0].body
    link = found.group(0)
    form = client.get(link, follow=True)
    new = "a brand new passphrase 42"
    client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    owner.refresh_from_db()
    assert owner.check_password(new)
    assert not works(pair.access)
    assert refresh(anon, refreshToken=pair.refresh).status_code == 401


def test_a_deactivated_user_is_refused_and_stays_revoked_after_reactivation(
    admin_client, anon, owner
):
    pair = tokens_issue(user=owner)
    change = f"/admin/auth/user/{owner.pk}/change/"
    form = admin_client.get(change).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and not isinstance(v, list)}
    data.update(
        {
            "is_active": "",
            "date_joined_0": owner.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": owner.date_joined.strftime("%H:%M:%S"),
            "credit_account-TOTAL_FORMS": "0",
            "credit_account-INITIAL_FORMS": "0",
        }
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)
    data.pop("password", None)
    response = admin_client.post(change, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    owner.refresh_from_db()
    assert not owner.is_active
    assert not works(pair.access)
    assert refresh(anon, refreshToken=pair.refresh).status_code == 401
    owner.is_active = True
    owner.save(update_fields=["is_active"])
    assert not works(pair.access)


def test_staff_sign_out_everywhere_revokes_every_token(admin_client, owner):
    pair = tokens_issue(user=owner)
    response = admin_client.post(
        "/admin/auth/user/",
        {
            "action": "sign_out_everywhere",
            "_selected_action": [owner.pk],
            "apply": "1",
            "token": "t-1",
            "reason": "lost laptop",
        },
    )
    assert response.status_code == 302
    assert not works(pair.access)


def test_the_generation_check_costs_no_extra_query(owner):
    """tier-info stays one query for the user (with its account and token generation)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=owner).access}")
    client.get(TIER_INFO)  # the first read may roll the period
    with CaptureQueriesContext(connection) as queries:
        assert client.get(TIER_INFO).status_code == 200
    assert len(queries) == 1, [q["sql"] for q in queries]
