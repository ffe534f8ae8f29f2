"""Every form that takes a password is rate limited per address (issue 12, item 3).

The forms are found, not listed: every route from the URL resolver (test_authorization's
enumeration, the admin included) is fetched as a visitor and as staff, and each page with a
password input is one. Each then gets wrong answers from one address until it says 429.
The count lives in the shared cache (test_rate_limits.py proves it holds across processes).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from hrvstr.tests.routes import routes
from subscriptions.tests.factories import PASSWORD

LIMIT = 10  # AUTH_RATE, per address per minute


def password_forms(staff, owner) -> dict[str, str]:
    """{path of a page with a password input: who can open it ("visitor" or "staff")}."""
    uid = urlsafe_base64_encode(force_bytes(owner.pk))
    samples = {
        "path": str(owner.pk),
        "id": str(owner.pk),
        "object_id": str(owner.pk),
        "uidb64": uid,
        "token": default_token_generator.make_token(owner),
    }
    clients = {"visitor": Client(), "staff": Client()}
    clients["staff"].force_login(staff, backend="hrvstr.auth.EmailBackend")
    found: dict[str, str] = {}
    for path in routes(skip_prefixes=("/static/", "/media/", "/__"), samples=samples):
        for who, client in clients.items():
            if path in found or "logout" in path:
                continue
            response = client.get(path)
            if response.status_code in (301, 302, 303) and "login" in response["Location"]:
                continue  # a page that sends the visitor to log in (checked there)
            if response.status_code in (301, 302, 303):
                response = client.get(path, follow=True)
            if response.status_code != 200 or b'type="password"' not in response.content:
                continue
            # Where the form posts: the page it ended on (a reset link moves on once); a page
            # that sent the visitor to log in is not itself a password form.
            chain = getattr(response, "redirect_chain", None)
            final = chain[-1][0] if chain else path
            if final == path or "login" not in final:
                found[final] = who
    return found


@pytest.mark.django_db
def test_every_password_form_is_rate_limited(rate_limits_on, staff, owner):
    forms = password_forms(staff, owner)
    # The discovery must see the forms we know of; a new one is covered the day it is added.
    uid = urlsafe_base64_encode(force_bytes(owner.pk))
    expected = {
        "/login/",
        "/signup/",
        f"/reset/{uid}/set-password/",
        "/admin/login/",
        "/admin/password_change/",
        f"/admin/auth/user/{owner.pk}/password/",
        "/admin/auth/user/add/",
    }
    assert expected <= set(forms), sorted(forms)
    for number, (path, who) in enumerate(sorted(forms.items())):
        client = Client(REMOTE_ADDR=f"198.51.100.{number + 1}")
        if who == "staff":
            client.force_login(staff, backend="hrvstr.auth.EmailBackend")
        wrong = {
            "username": staff.email,
            "email": staff.email,
            "password": "not-the-password",
            "old_password": "not-the-password",
            "new_password1": "x",
            "new_password2": "y",
            "password1": "x",
            "password2": "y",
        }
        statuses = [client.post(path, wrong).status_code for _ in range(LIMIT + 1)]
        assert 429 not in statuses[: LIMIT - 1] and statuses[-1] == 429, (path, statuses)
        # Over the limit, even the right password is not checked.
        right = wrong | {"password": PASSWORD, "old_password": PASSWORD}
        assert client.post(path, right).status_code == 429, path
        # Another address has its own allowance.
        other = Client(REMOTE_ADDR="203.0.113.1")
        if who == "staff":
            other.force_login(staff, backend="hrvstr.auth.EmailBackend")
        assert other.post(path, wrong).status_code != 429, path
