"""Register, sign in (e-mail + password, or a Google ID token), refresh, profile, logout."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.utils.decorators import method_decorator
from django_ratelimit.decorators import ratelimit
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hrvstr.api import RATE_LIMITED, AnyResponse, AuthenticatedRequest, valid
from hrvstr.auth import AccountJWTAuthentication
from hrvstr.errors import DomainError
from subscriptions.google_auth import google_id_token_verify, google_user_get_or_link
from subscriptions.tokens import tokens_issue, tokens_refresh, tokens_revoke_all
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


class UserOut(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField(allow_blank=True)
    tier = serializers.CharField()


class TokensOut(serializers.Serializer):
    """A token pair under simplejwt's names and under the SPA's (the same two tokens)."""

    access = serializers.CharField()
    refresh = serializers.CharField()
    token = serializers.CharField(help_text="the access token (the SPA's name)")
    refreshToken = serializers.CharField()
    expiresIn = serializers.IntegerField(help_text="seconds the access token lives")


class SignedInOut(TokensOut):
    user = UserOut()


class SignedInEnvelope(SignedInOut):
    success = serializers.BooleanField()
    data = SignedInOut()  # type: ignore[assignment]  # a field, not Serializer.data


def user_as_json(user: User) -> dict[str, object]:
    account = getattr(user, "credit_account", None)
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.get_full_name() or user.email,
        "tier": account.tier if account is not None else "free",
    }


def tokens_for(user: User) -> dict[str, object]:
    return {**tokens_issue(user=user).as_json(), "user": user_as_json(user)}


@ratelimit_auth
class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=RegisterInput,
        responses={201: SignedInEnvelope, 400: AnyResponse, 409: AnyResponse, **RATE_LIMITED},
    )
    def post(self, request: Request) -> Response:
        data = valid(RegisterInput, request)
        user = user_register(email=data["email"], password=data["password"], name=data["name"])
        body = tokens_for(user)
        return Response(
            SignedInEnvelope({"success": True, "data": body, **body}).data,
            status=status.HTTP_201_CREATED,
        )


@ratelimit_auth
class TokenApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=CredentialsInput,
        responses={200: SignedInEnvelope, 400: AnyResponse, 401: AnyResponse, **RATE_LIMITED},
    )
    def post(self, request: Request) -> Response:
        data = valid(CredentialsInput, request)
        user = authenticate(request, email=data["email"], password=data["password"])
        if user is None:
            raise InvalidCredentials()
        body = tokens_for(user)
        # Top-level access/refresh too: the shape simplejwt clients expect.
        return Response(SignedInEnvelope({"success": True, "data": body, **body}).data)


class LegacyRefreshInput(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


@ratelimit_auth
class TokenRefreshApi(APIView):
    """simplejwt's refresh endpoint, with rotation and reuse detection."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=LegacyRefreshInput,
        responses={200: TokensOut, 400: AnyResponse, 401: AnyResponse, **RATE_LIMITED},
    )
    def post(self, request: Request) -> Response:
        data = valid(LegacyRefreshInput, request)
        tokens, _ = tokens_refresh(raw=data["refresh"], kind="refresh")
        return Response(TokensOut(tokens.as_json()).data)


# --- the original SPA's auth endpoints ---------------------------------------------------------


class RefreshInput(serializers.Serializer):
    token = serializers.CharField(
        max_length=4096, required=False, help_text="the current, still valid access token"
    )
    refreshToken = serializers.CharField(max_length=4096, required=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if not data.get("token") and not data.get("refreshToken"):
            raise serializers.ValidationError("Send token (the access token) or refreshToken")
        return data


class RefreshOut(TokensOut):
    success = serializers.BooleanField()


@ratelimit_auth
class RefreshApi(APIView):
    """A new pair for the newest one; tokens rotate and a reused pair revokes its sign-in."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=RefreshInput,
        responses={200: RefreshOut, 400: AnyResponse, 401: AnyResponse, **RATE_LIMITED},
    )
    def post(self, request: Request) -> Response:
        data = valid(RefreshInput, request)
        if data.get("refreshToken"):
            tokens, _ = tokens_refresh(raw=data["refreshToken"], kind="refresh")
        else:
            tokens, _ = tokens_refresh(raw=data["token"], kind="access")
        return Response(RefreshOut({"success": True, **tokens.as_json()}).data)


class ProfileOut(UserOut):
    success = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    last_login = serializers.DateTimeField(allow_null=True)


class ProfileApi(APIView):
    @extend_schema(responses={200: ProfileOut, 401: AnyResponse})
    def get(self, request: AuthenticatedRequest) -> Response:
        user = request.user
        body = {
            "success": True,
            **user_as_json(user),
            "created_at": user.date_joined,
            "last_login": user.last_login,
        }
        return Response(ProfileOut(body).data)


class LogoutOut(serializers.Serializer):
    success = serializers.BooleanField()
    revoked = serializers.BooleanField(help_text="whether this request's tokens were revoked")


class LogoutApi(APIView):
    """Revokes every token of the signed-in user (all devices).

    The original SPA posts here without its token, so an anonymous call answers 200 and
    revokes nothing (the SPA has dropped its tokens already).
    """

    permission_classes = [AllowAny]
    authentication_classes = [AccountJWTAuthentication]

    @extend_schema(request=None, responses={200: LogoutOut, 401: AnyResponse})
    def post(self, request: Request) -> Response:
        user, revoked = request.user, False
        if user and user.is_authenticated:
            tokens_revoke_all(user_id=user.pk, reason="logout")
            revoked = True
        return Response(LogoutOut({"success": True, "revoked": revoked}).data)


class GoogleLoginInput(serializers.Serializer):
    credential = serializers.CharField(
        max_length=8192,
        required=False,
        help_text="Google's ID token (CredentialResponse.credential of @react-oauth/google)",
    )
    # What the unmodified SPA sends: a profile its browser decoded. Accepted as input only to
    # answer with the fix; it never signs anyone in.
    googleId = serializers.CharField(max_length=255, required=False)
    email = serializers.CharField(max_length=254, required=False)
    name = serializers.CharField(max_length=255, required=False, allow_blank=True)
    picture = serializers.CharField(max_length=2048, required=False, allow_blank=True)


class GoogleUserOut(UserOut):
    picture = serializers.CharField(allow_blank=True)


class GoogleSignedInOut(TokensOut):
    success = serializers.BooleanField()
    user = GoogleUserOut()


class GoogleCredentialRequired(DomainError):
    code = "google_credential_required"
    status = 400
    message = (
        "Send Google's ID token as `credential` (CredentialResponse.credential from "
        "@react-oauth/google's GoogleLogin); a profile decoded in the browser proves nothing "
        "and never signs anyone in. See the README, 'Google sign-in from the SPA'."
    )


@ratelimit_auth
class GoogleLoginApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=GoogleLoginInput,
        responses={
            200: GoogleSignedInOut,
            400: AnyResponse,
            401: AnyResponse,
            403: AnyResponse,
            503: AnyResponse,
            **RATE_LIMITED,
        },
    )
    def post(self, request: Request) -> Response:
        data = valid(GoogleLoginInput, request)
        if not data.get("credential"):
            raise GoogleCredentialRequired()
        claims = google_id_token_verify(credential=data["credential"])
        user = google_user_get_or_link(claims=claims)
        body = {
            "success": True,
            **tokens_issue(user=user).as_json(),
            "user": {**user_as_json(user), "picture": str(claims.get("picture") or "")},
        }
        return Response(GoogleSignedInOut(body).data)
