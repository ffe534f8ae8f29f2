"""Register and obtain JWTs (e-mail + password)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, get_user_model
from django.utils.decorators import method_decorator
from django_ratelimit.decorators import ratelimit
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenRefreshView

from hrvstr.errors import DomainError
from subscriptions.apis import RATE_LIMITED, AnyResponse, _valid
from subscriptions.users import user_register

AUTH_RATE = "10/m"
ratelimit_auth = method_decorator(
    ratelimit(key="ip", rate=AUTH_RATE, method="POST", block=True), name="post"
)


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    status = 401
    message = "Wrong e-mail or password"


class CredentialsInput(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class RegisterInput(CredentialsInput):
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


def tokens_for(user) -> dict[str, object]:
    refresh = RefreshToken.for_user(user)
    return {
        "access": str(refresh.access_token),
        "refresh": str(refresh),
        "user": {"id": user.pk, "email": user.email},
    }


@ratelimit_auth
class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=RegisterInput, responses={201: AnyResponse, 400: AnyResponse, **RATE_LIMITED}
    )
    def post(self, request: Request) -> Response:
        data = _valid(RegisterInput, request)
        user = user_register(email=data["email"], password=data["password"], name=data["name"])
        return Response({"success": True, "data": tokens_for(user)}, status=status.HTTP_201_CREATED)


@ratelimit_auth
class TokenApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=CredentialsInput,
        responses={200: AnyResponse, 400: AnyResponse, 401: AnyResponse, **RATE_LIMITED},
    )
    def post(self, request: Request) -> Response:
        data = _valid(CredentialsInput, request)
        user = authenticate(request, email=data["email"], password=data["password"])
        if user is None:
            raise InvalidCredentials()
        body = tokens_for(user)
        # Top-level access/refresh too: the shape simplejwt clients expect.
        return Response({"success": True, "data": body, **body})


class RefreshInput(TokenRefreshSerializer):
    """simplejwt's refresh, with a deleted user's token refused (401) instead of a 500.

    simplejwt looks the user up with ``objects.get`` and lets ``DoesNotExist`` escape.
    """

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            return super().validate(attrs)
        except get_user_model().DoesNotExist as exc:
            raise AuthenticationFailed(
                self.error_messages["no_active_account"], "no_active_account"
            ) from exc


@ratelimit_auth
class TokenRefreshApi(TokenRefreshView):
    authentication_classes: list[type] = []
    serializer_class = RefreshInput

    @extend_schema(responses={200: AnyResponse, 400: AnyResponse, 401: AnyResponse, **RATE_LIMITED})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)
