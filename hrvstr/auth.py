from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token


def normalize_email(email: str) -> str:
    return email.strip().lower()


class EmailBackend(ModelBackend):
    """Log in with e-mail and password (the username is the normalised e-mail)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        email: str | None = None,
        **kwargs: Any,
    ) -> AbstractBaseUser | None:
        login = email or username
        if not login or password is None:
            return None
        return super().authenticate(request, username=normalize_email(login), password=password)


class AccountJWTAuthentication(JWTAuthentication):
    """Bearer JWT whose user comes with the credit account in the same query.

    Nearly every API call reads the account, so joining it here makes tier-info a one-query
    endpoint (and a 304 no dearer).
    """

    def get_user(self, validated_token: Token) -> AbstractBaseUser:
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidToken("Token contained no recognizable user identification") from exc
        user_model = get_user_model()
        try:
            user = user_model.objects.select_related("credit_account").get(
                **{api_settings.USER_ID_FIELD: user_id}
            )
        except user_model.DoesNotExist as exc:
            raise AuthenticationFailed("User not found", code="user_not_found") from exc
        if not user.is_active:
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        return user


class AccountJWTScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema that the API takes ``Authorization: Bearer <access JWT>``."""

    target_class = "hrvstr.auth.AccountJWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
