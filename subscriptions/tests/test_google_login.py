"""Google sign-in: ID tokens verified with google-auth against certificates we generate here
(a local RSA key and its self-signed certificate stand in for Google's; no network)."""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.contrib.auth import get_user_model
from google.auth import crypt
from google.auth import jwt as google_jwt

from subscriptions import google_auth
from subscriptions.models import CreditAccount, GoogleIdentity

CLIENT_ID = "client-123.apps.googleusercontent.com"
KEY_ID = "local-test-key"


def _key_and_cert() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.google.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


GOOGLE_KEY, GOOGLE_CERT = _key_and_cert()
OTHER_KEY, _ = _key_and_cert()


@dataclass
class _CertsResponse:
    status: int
    data: bytes


class FakeGoogle:
    """google-auth's transport, answering the certificate URL with our certificate."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url: str, method: str = "GET", **kwargs) -> _CertsResponse:
        self.urls.append(url)
        return _CertsResponse(200, json.dumps({KEY_ID: GOOGLE_CERT}).encode())


@pytest.fixture
def google(settings, monkeypatch) -> FakeGoogle:
    settings.GOOGLE_CLIENT_IDS = [CLIENT_ID]
    fake = FakeGoogle()
    monkeypatch.setattr(google_auth, "google_transport", lambda: fake)
    return fake


def id_token(key: str = GOOGLE_KEY, **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": CLIENT_ID,
        "sub": "109876543210",
        "email": "pat@example.com",
        "email_verified": True,
        "name": "Pat Example",
        "picture": "https://example.com/pat.png",
        "iat": now,
        "exp": now + 3600,
    }
    payload.update(claims)
    signer = crypt.RSASigner.from_string(key, KEY_ID)
    return google_jwt.encode(signer, payload).decode()


def google_login(anon, credential: str):
    return anon.post("/api/auth/google-login", {"credential": credential}, format="json")


def test_a_verified_id_token_signs_in_a_new_user(anon, db, google):
    response = google_login(anon, id_token())
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["token"] and body["refreshToken"] and body["expiresIn"] == 7 * 24 * 3600
    assert body["user"]["email"] == "pat@example.com"
    assert body["user"]["picture"] == "https://example.com/pat.png"
    user = get_user_model().objects.get(email="pat@example.com")
    assert not user.has_usable_password()
    assert CreditAccount.objects.get(user=user).tier == "free"
    assert GoogleIdentity.objects.get(subject="109876543210").user == user
    assert google.urls == ["https://www.googleapis.com/oauth2/v1/certs"]
    tier_info = anon.get(
        "/api/subscription/tier-info", HTTP_AUTHORIZATION=f"Bearer {body['token']}"
    )
    assert tier_info.status_code == 200


def test_the_first_sign_in_links_an_existing_user_by_verified_email(anon, owner, google):
    body = google_login(anon, id_token(email="OWNER@example.com")).json()
    assert body["user"]["id"] == owner.pk
    # Later sign-ins find the user by Google's subject, even after an e-mail change at Google.
    again = google_login(anon, id_token(email="renamed@example.com")).json()
    assert again["user"]["id"] == owner.pk
    assert get_user_model().objects.count() == 1


def test_an_unverified_email_never_links_or_creates(anon, owner, google):
    response = google_login(anon, id_token(email=owner.email, email_verified=False))
    assert (response.status_code, response.json()["code"]) == (400, "google_email_unverified")
    assert not GoogleIdentity.objects.exists()


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param(lambda: id_token(key=OTHER_KEY), id="signed-by-someone-else"),
        pytest.param(lambda: id_token(aud="someone-elses-client"), id="other-audience"),
        pytest.param(lambda: id_token(iss="https://evil.example"), id="other-issuer"),
        pytest.param(
            lambda: id_token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
            id="expired",
        ),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
    ],
)
def test_tokens_google_did_not_issue_for_us_are_refused(anon, owner, google, credential):
    response = google_login(anon, credential())
    assert (response.status_code, response.json()["code"]) == (401, "google_token_invalid")
    assert "token" not in response.json()
    assert not GoogleIdentity.objects.exists()


def test_a_disabled_user_cannot_sign_in_with_google(anon, owner, google):
    google_login(anon, id_token(email=owner.email))
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    assert google_login(anon, id_token(email=owner.email)).status_code == 403


def test_without_a_client_id_google_sign_in_says_it_is_not_configured(anon, db, settings):
    settings.GOOGLE_CLIENT_IDS = []
    response = google_login(anon, id_token())
    assert (response.status_code, response.json()["code"]) == (503, "google_not_configured")
