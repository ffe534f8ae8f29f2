"""JWTs for the SPA: issue, rotate (with reuse detection) and revoke.

Every token carries the user's token generation (``gen``), its sign-in family (``fam``) and the
pair it belongs to (``pair``; an access and a refresh token issued together share it).

- Each API request compares ``gen`` with the user's current generation, read in the same query
  as the user (``hrvstr.auth``): bumping it revokes every token of that user at once. Logout,
  a password change or reset, and a staff action bump it; a deactivated user is refused anyway.
- A refresh exchanges the family's newest pair (its refresh token, or its still valid access
  token, which is what the original SPA sends) for a new pair. Presenting a pair that was
  already exchanged means someone else holds a copy: the family is revoked, and so is every
  token of the user (the generation is bumped), because access tokens live for days and only
  the generation reaches them.

Access tokens live ``SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]`` (7 days by default, because the
SPA counts itself signed in for 7 days and refreshes in the last 24 hours); refresh tokens
``REFRESH_TOKEN_LIFETIME``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, Token

from hrvstr.errors import DomainError
from subscriptions.models import RefreshFamily, TokenGeneration


class TokenInvalid(DomainError):
    code = "token_invalid"
    status = 401
    message = "The token is invalid or expired; sign in again"


class TokenRevoked(DomainError):
    code = "token_revoked"
    status = 401
    message = "The token was revoked; sign in again"


class TokenReused(DomainError):
    code = "token_reused"
    status = 401
    message = "This token was already exchanged; every token of this sign-in is now revoked"


@dataclass(frozen=True)
class IssuedTokens:
    access: str
    refresh: str
    expires_in: int  # seconds the access token lives

    def as_json(self) -> dict[str, Any]:
        """simplejwt's names and the SPA's names for the same pair."""
        return {
            "access": self.access,
            "refresh": self.refresh,
            "token": self.access,
            "refreshToken": self.refresh,
            "expiresIn": self.expires_in,
        }


def generation_of(user: User) -> int:
    """The user's token generation as loaded with the user (no row: 0)."""
    try:
        return user.token_generation.value
    except ObjectDoesNotExist:
        return 0


def _current_generation(user_id: int) -> int:
    value = TokenGeneration.objects.filter(user_id=user_id).values_list("value", flat=True)
    return value.first() or 0


def _pair(*, user_id: int, generation: int, family: str, pair: str) -> IssuedTokens:
    tokens: list[Token] = [RefreshToken(), AccessToken()]
    for token in tokens:
        token[api_settings.USER_ID_CLAIM] = user_id
        token["gen"] = generation
        token["fam"] = family
        token["pair"] = pair
    refresh, access = tokens
    return IssuedTokens(
        access=str(access),
        refresh=str(refresh),
        expires_in=int(api_settings.ACCESS_TOKEN_LIFETIME.total_seconds()),
    )


def tokens_issue(*, user: User) -> IssuedTokens:
    """A new sign-in: a new family and its first pair."""
    family = RefreshFamily.objects.create(
        id=uuid.uuid4().hex, user_id=user.pk, current_pair=uuid.uuid4().hex
    )
    return _pair(
        user_id=user.pk,
        generation=_current_generation(user.pk),
        family=family.id,
        pair=family.current_pair,
    )


def token_read(*, raw: str, kind: str) -> tuple[Token, User]:
    """Verify a token (signature, expiry, type, generation) and load its active user."""
    from hrvstr.auth import user_with_account

    token_class = AccessToken if kind == "access" else RefreshToken
    try:
        # simplejwt annotates the encoded token as ``Token | None``; it takes (and decodes) a str.
        token = token_class(raw)  # type: ignore[arg-type]
    except TokenError:
        raise TokenInvalid() from None
    claims = (api_settings.USER_ID_CLAIM, "gen", "fam", "pair")
    if any(token.get(claim) is None for claim in claims):
        raise TokenInvalid()
    user = user_with_account(token[api_settings.USER_ID_CLAIM])
    if user is None or not user.is_active:
        raise TokenInvalid("The account no longer exists or is disabled")
    if token["gen"] != generation_of(user):
        raise TokenRevoked()
    return token, user


def tokens_refresh(*, raw: str, kind: str) -> tuple[IssuedTokens, User]:
    """Exchange the family's newest pair for a new one; an older pair revokes the family."""
    token, user = token_read(raw=raw, kind=kind)
    new_pair = uuid.uuid4().hex
    rotated = RefreshFamily.objects.filter(
        id=token["fam"], user_id=user.pk, current_pair=token["pair"], revoked_at__isnull=True
    ).update(current_pair=new_pair, rotated_at=timezone.now())
    if not rotated:
        # This pair was exchanged before (or its family revoked for that): a copy is out
        # there. Revoke the family (committed: nothing here is rolled back with the 401).
        RefreshFamily.objects.filter(
            id=token["fam"], user_id=user.pk, revoked_at__isnull=True
        ).update(revoked_at=timezone.now(), revoked_reason="reuse")
        # The copy's access tokens are still good for days: sign out everywhere. (A replay
        # after this carries the old generation and stops at token_read: no repeated bumps.)
        tokens_revoke_all(user_id=user.pk, reason="reuse")
        raise TokenReused()
    tokens = _pair(user_id=user.pk, generation=token["gen"], family=token["fam"], pair=new_pair)
    return tokens, user


def tokens_revoke_all(*, user_id: int, reason: str) -> None:
    """Revoke every token of the user at once (the next request of any of them is a 401)."""
    now = timezone.now()
    with transaction.atomic():
        updated = TokenGeneration.objects.filter(user_id=user_id).update(
            value=F("value") + 1, reason=reason, changed_at=now
        )
        if not updated:
            try:
                with transaction.atomic():
                    TokenGeneration.objects.create(user_id=user_id, value=1, reason=reason)
            except IntegrityError:  # created meanwhile by a concurrent revocation
                TokenGeneration.objects.filter(user_id=user_id).update(
                    value=F("value") + 1, reason=reason, changed_at=now
                )
        RefreshFamily.objects.filter(user_id=user_id, revoked_at__isnull=True).update(
            revoked_at=now, revoked_reason=reason
        )


class RevokeTokensOnPasswordChange:
    """A password "validator" that validates nothing: Django calls its ``password_changed``
    whenever a password is set and saved, whatever the path (reset, the admin, the
    ``changepassword`` command, our pages), so every token issued before dies with it."""

    def validate(self, password: str, user: Any = None) -> None:
        return None

    def password_changed(self, password: str, user: Any = None) -> None:
        if user is not None and user.pk is not None:
            tokens_revoke_all(user_id=user.pk, reason="password_changed")

    def get_help_text(self) -> str:
        return ""
