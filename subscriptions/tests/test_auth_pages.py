from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from subscriptions.models import CreditAccount
from subscriptions.tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_it_signs_up_a_free_account_and_logs_in(client):
    response = client.post(
        "/signup/",
        {"email": "New@Example.com", "password": "a long passphrase", "name": "Nia"},
    )
    assert response.status_code == 302 and response["Location"] == "/pricing/"
    user = get_user_model().objects.get(email="new@example.com")
    assert CreditAccount.objects.get(user=user).tier == "free"
    page = client.get("/pricing/")
    assert "Log out" in page.content.decode()


def test_signup_goes_on_to_a_safe_next_page_only(client):
    ok = client.post(
        "/signup/", {"email": "a@example.com", "password": "a long passphrase", "next": "/billing/"}
    )
    assert ok["Location"] == "/billing/"
    Client().logout()
    evil = Client().post(
        "/signup/",
        {"email": "b@example.com", "password": "a long passphrase", "next": "https://evil.test/"},
    )
    assert evil["Location"] == "/pricing/"


@pytest.mark.parametrize(
    "email, password, message",
    [
        ("not-an-email", "a long passphrase", "Enter a valid email address."),
        ("x@example.com", "short", "This password is too short"),
        ("x@example.com", "password", "This password is too common"),
    ],
)
def test_signup_shows_what_is_wrong_next_to_the_field(client, email, password, message):
    response = client.post("/signup/", {"email": email, "password": password})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not get_user_model().objects.filter(email=email).exists()


def test_signup_refuses_a_taken_email(client, owner):
    response = client.post("/signup/", {"email": "OWNER@example.com", "password": "a long pass 1"})
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_signup_page_has_labelled_fields_and_csrf(client):
    html = Client(enforce_csrf_checks=True).get("/signup/").content.decode()
    assert '<label for="id_email">' in html and '<label for="id_password">' in html
    assert "csrfmiddlewaretoken" in html
    assert Client(enforce_csrf_checks=True).post("/signup/", {}).status_code == 403


def test_it_logs_in_with_email_and_redirects_to_billing(client, owner):
    response = client.post("/login/", {"username": "Owner@Example.com", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/billing/"


def test_a_wrong_password_is_a_400_with_a_message(client, owner):
    response = client.post("/login/", {"username": owner.email, "password": "nope"})
    assert response.status_code == 400
    assert "Wrong e-mail or password" in response.content.decode()


def test_login_is_rate_limited_per_address(client, owner):
    for _ in range(10):
        client.post("/login/", {"username": owner.email, "password": "nope"})
    response = client.post("/login/", {"username": owner.email, "password": PASSWORD})
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    assert "too often" in response.content.decode()


def test_logout_is_a_post(owner_client):
    assert owner_client.post("/logout/").status_code == 302
    assert owner_client.get("/billing/")["Location"].startswith("/login/")


def test_password_reset_mails_a_link_that_sets_a_new_password(client, owner):
    response = client.post("/password-reset/", {"email": owner.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    found = re.search(r"http://testserver(/reset/\S+)", str(mail.outbox[0].body))
    assert found, mail.outbox[0].body
    link = found.group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "another long pass", "new_password2": "another long pass"},
    )
    assert done.status_code == 302
    assert Client().login(username=owner.email, password="another long pass")


def test_password_reset_for_an_unknown_email_says_the_same(client):
    response = client.post("/password-reset/", {"email": "nobody@example.com"}, follow=True)
    assert "Check your e-mail" in response.content.decode()
    assert mail.outbox == []


def test_home_sends_visitors_to_pricing_and_members_to_billing(client, owner_client):
    assert client.get("/")["Location"] == "/pricing/"
    assert owner_client.get("/")["Location"] == "/billing/"


def test_members_who_open_sign_up_go_to_billing(owner_client):
    assert owner_client.get("/signup/")["Location"] == "/billing/"


def test_members_who_open_log_in_go_to_billing(owner_client):
    assert owner_client.get("/login/")["Location"] == "/billing/"


def test_an_unknown_page_is_a_friendly_404(client, settings):
    settings.DEBUG = False
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
