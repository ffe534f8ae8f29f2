"""Signing in with Google: only on an ID token that Google signed for our client id.

The token (a JWT) is verified with google-auth against Google's published certificates:
signature, issuer (accounts.google.com), audience (``GOOGLE_CLIENT_ID``) and expiry. Users are
found by Google's stable subject; the first sign-in links a user by a verified e-mail (or
creates one). A profile that a browser decoded itself proves nothing and is never accepted.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from google.auth import exceptions as google_exceptions
from google.auth.transport import requests as google_requests
from google.oauth2 import id_token

from hrvstr.auth import normalize_email
from hrvstr.errors import DomainError
from subscriptions.models import GoogleIdentity
from subscriptions.services import account_create


class GoogleNotConfigured(DomainError):
    code = "google_not_configured"
    status = 503
    message = "Google sign-in is not configured on this server (set GOOGLE_CLIENT_ID)"


class GoogleTokenInvalid(DomainError):
    code = "google_token_invalid"
    status = 401
    message = "Google's ID token could not be verified"


class GoogleEmailUnverified(DomainError):
    code = "google_email_unverified"
    status = 400
    message = "Google has not verified this account's e-mail address"


class AccountDisabled(DomainError):
    code = "account_disabled"
    status = 403
    message = "This account is disabled"


def google_transport() -> Any:
    """How google-auth fetches Google's certificates (tests replace this with local keys)."""
    return google_requests.Request()


def google_id_token_verify(*, credential: str) -> dict[str, Any]:
    """The claims of a Google ID token issued for one of our client ids, or an error."""
    audience = list(settings.GOOGLE_CLIENT_IDS)
    if not audience:
        raise GoogleNotConfigured()
    try:
        claims = id_token.verify_oauth2_token(
            credential, google_transport(), audience=audience, clock_skew_in_seconds=10
        )
    except (ValueError, google_exceptions.GoogleAuthError) as exc:
        raise GoogleTokenInvalid(f"Google's ID token could not be verified: {exc}") from None
    if not claims.get("sub"):
        raise GoogleTokenInvalid("Google's ID token names no subject")
    return dict(claims)


def google_user_get_or_link(*, claims: dict[str, Any]) -> User:
    """The user linked to this Google subject; on first sign-in, link by verified e-mail."""
    subject = str(claims["sub"])
    identity = GoogleIdentity.objects.select_related("user").filter(subject=subject).first()
    if identity is None:
        email = normalize_email(str(claims.get("email") or ""))
        if not email or claims.get("email_verified") is not True:
            raise GoogleEmailUnverified()
        user_model = get_user_model()
        try:
            with transaction.atomic():
                user = user_model.objects.filter(username=email).first()
                if user is None:
                    user = user_model(
                        username=email, email=email, first_name=str(claims.get("name", ""))[:150]
                    )
                    user.set_unusable_password()
                    user.save()
                    account_create(user=user)
                identity = GoogleIdentity.objects.create(subject=subject, user=user, email=email)
        except IntegrityError:  # the same first sign-in twice at once: the other one linked
            identity = GoogleIdentity.objects.select_related("user").get(subject=subject)
    user = identity.user
    if not user.is_active:
        raise AccountDisabled()
    return user
