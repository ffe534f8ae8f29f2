"""The SPA's REST API for tiers and credits. Views parse, call one service or selector, answer."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from django.utils import timezone
from django.utils.decorators import method_decorator
from django_ratelimit.decorators import ratelimit
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from activities.models import LedgerEntry
from activities.selectors import ledger_for_user
from hrvstr.parsing import ascii_int
from subscriptions import catalogue, selectors, services
from subscriptions.errors import InvalidAmount, UnknownComponent

SPEND_RATE = "120/m"
UNLOCK_RATE = "30/m"
ratelimit_spend = method_decorator(
    ratelimit(key="user_or_ip", rate=SPEND_RATE, method="POST", block=True), name="post"
)
ratelimit_unlock = method_decorator(
    ratelimit(key="user_or_ip", rate=UNLOCK_RATE, method="POST", block=True), name="post"
)

AnyResponse = inline_serializer(
    "Envelope", fields={"success": serializers.BooleanField(), "data": serializers.JSONField()}
)
ERRORS = {400: AnyResponse, 401: AnyResponse, 402: AnyResponse, 403: AnyResponse}
# Views behind a rate limit also answer 429 (with Retry-After): the schema says so.
RATE_LIMITED = {429: AnyResponse}


def ok(data: Any, *, code: int = status.HTTP_200_OK) -> Response:
    return Response({"success": True, "data": data}, status=code)


def idempotency_key_from(request: Request) -> str:
    """The client's Idempotency-Key header, or a fresh one (then a retry is a new request)."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return uuid.uuid4().hex
    if len(key) > services.MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise InvalidAmount(
            f"Idempotency-Key must be 1-{services.MAX_IDEMPOTENCY_KEY_LENGTH} printable characters"
        )
    return key


class QuantityInput(serializers.Serializer):
    action = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(
        default=1, min_value=1, max_value=catalogue.MAX_ACTION_QUANTITY
    )


def spend_as_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "transactionId": entry.pk,
        "action": entry.details.get("action"),
        "quantity": entry.details.get("quantity"),
        "cost": entry.details.get("cost"),
        "creditsUsed": -entry.total_delta,
        "remaining": entry.remaining_after,
        "monthlyRemaining": entry.monthly_remaining_after,
        "purchasedRemaining": entry.purchased_after,
        "createdAt": entry.created_at.isoformat(),
    }


class TierInfoApi(APIView):
    @extend_schema(responses={200: AnyResponse, 304: None, 401: AnyResponse})
    def get(self, request: Request) -> Response:
        now = timezone.now()
        account = services.account_get(user=request.user, now=now)
        payload = {"success": True, "data": selectors.tier_info(account=account, now=now)}
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        # The ETag is a hash of the answer itself: it changes exactly when the data does.
        etag = '"' + hashlib.blake2b(body.encode(), digest_size=16).hexdigest() + '"'
        if etag in request.headers.get("If-None-Match", ""):
            response = Response(status=status.HTTP_304_NOT_MODIFIED)
        else:
            response = Response(payload)
        response["ETag"] = etag
        response["Cache-Control"] = "private, no-cache"
        return response


class AvailableTiersApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(responses={200: AnyResponse})
    def get(self, request: Request) -> Response:
        return ok({"tiers": selectors.available_tiers(), "bundles": selectors.bundles_for_sale()})


class UsageStatsApi(APIView):
    @extend_schema(responses={200: AnyResponse, 401: AnyResponse})
    def get(self, request: Request) -> Response:
        now = timezone.now()
        account = services.account_get(user=request.user, now=now)
        return ok(selectors.usage_stats(account=account, now=now))


class BalanceApi(APIView):
    @extend_schema(responses={200: AnyResponse, 401: AnyResponse})
    def get(self, request: Request) -> Response:
        now = timezone.now()
        account = services.account_get(user=request.user, now=now)
        return ok(selectors.credits_summary(account=account, now=now) | {"tier": account.tier})


class CostApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("quantity", int, required=False)],
        responses={200: AnyResponse, **ERRORS},
    )
    def get(self, request: Request, action: str) -> Response:
        raw = request.query_params.get("quantity", "1")
        quantity = ascii_int(raw)
        if quantity is None:
            # Not str.isdigit(): "²" is a digit to it, and int("²") then fails with a 500.
            raise InvalidAmount("quantity must be a positive integer", quantity=raw[:32])
        cost = services.action_cost(action=action, quantity=quantity)
        return ok({"action": action, "quantity": quantity, "cost": cost})


class TransactionsApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, required=False),
            OpenApiParameter("offset", int, required=False),
            OpenApiParameter("before", int, required=False, description="keyset: rows below id"),
        ],
        responses={200: AnyResponse, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        limit = _bounded_int(request, "limit", default=20, low=1, high=100)
        offset = _bounded_int(request, "offset", default=0, low=0, high=1_000_000)
        before = _bounded_int(request, "before", default=0, low=0, high=2**62)
        rows = ledger_for_user(user_id=request.user.pk)
        if before:
            rows = rows.filter(pk__lt=before)
        page = list(rows[offset : offset + limit + 1])
        return ok(
            {
                "transactions": [_transaction_json(entry) for entry in page[:limit]],
                "limit": limit,
                "offset": offset,
                "hasMore": len(page) > limit,
                "nextBefore": page[limit - 1].pk if len(page) > limit else None,
            }
        )


def _transaction_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "type": entry.kind,
        "description": entry.reason or entry.get_kind_display(),
        "amount": entry.total_delta,
        "monthlyDelta": entry.monthly_delta,
        "purchasedDelta": entry.purchased_delta,
        "balanceAfter": entry.remaining_after,
        "action": entry.details.get("action") or entry.details.get("component"),
        "actor": entry.actor,
        "createdAt": entry.created_at.isoformat(),
    }


def _bounded_int(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = ascii_int(raw)
    if value is None:
        raise InvalidAmount(f"{name} must be an integer", field=name)
    if not low <= value <= high:
        raise InvalidAmount(f"{name} must be between {low} and {high}", field=name)
    return value


@ratelimit_spend
class SpendApi(APIView):
    @extend_schema(
        request=QuantityInput,
        responses={200: AnyResponse, 409: AnyResponse, **ERRORS, **RATE_LIMITED},
    )
    def post(self, request: Request) -> Response:
        data = _valid(QuantityInput, request)
        result = services.credits_spend(
            user=request.user,
            action=data["action"],
            quantity=data["quantity"],
            idempotency_key=idempotency_key_from(request),
        )
        response = ok(spend_as_json(result.entry))
        response["Idempotent-Replayed"] = "true" if result.replayed else "false"
        return response


def _valid(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object"]})
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def hold_as_json(hold: Any) -> dict[str, Any]:
    return {
        "id": hold.pk,
        "action": hold.action,
        "quantity": hold.quantity,
        "amount": hold.amount,
        "status": hold.status,
        "expiresAt": hold.expires_at.isoformat(),
    }


@ratelimit_spend
class HoldCreateApi(APIView):
    @extend_schema(
        request=QuantityInput,
        responses={201: AnyResponse, 409: AnyResponse, **ERRORS, **RATE_LIMITED},
    )
    def post(self, request: Request) -> Response:
        data = _valid(QuantityInput, request)
        hold = services.credits_hold_create(
            user=request.user,
            action=data["action"],
            quantity=data["quantity"],
            idempotency_key=idempotency_key_from(request),
        )
        return ok(hold_as_json(hold), code=status.HTTP_201_CREATED)


class HoldCaptureApi(APIView):
    @extend_schema(
        request=None,
        responses={200: AnyResponse, 401: AnyResponse, 404: AnyResponse, 409: AnyResponse},
    )
    def post(self, request: Request, hold_id: int) -> Response:
        return ok(hold_as_json(services.credits_hold_capture(user=request.user, hold_id=hold_id)))


class HoldReleaseApi(APIView):
    @extend_schema(
        request=None,
        responses={200: AnyResponse, 401: AnyResponse, 404: AnyResponse, 409: AnyResponse},
    )
    def post(self, request: Request, hold_id: int) -> Response:
        return ok(hold_as_json(services.credits_hold_release(user=request.user, hold_id=hold_id)))


class UnlockInput(serializers.Serializer):
    component = serializers.CharField(max_length=64)


@ratelimit_unlock
class UnlockComponentApi(APIView):
    @extend_schema(request=UnlockInput, responses={200: AnyResponse, **ERRORS, **RATE_LIMITED})
    def post(self, request: Request) -> Response:
        data = _valid(UnlockInput, request)
        result = services.component_unlock(user=request.user, component=data["component"])
        now = timezone.now()
        if result.entry is not None:
            remaining = result.entry.remaining_after
        else:  # nothing changed: the account read with the request is current
            remaining = services.account_get(user=request.user, now=now).remaining
        return ok(
            {
                "unlocked": True,
                "charged": result.charged,
                "creditsUsed": result.unlock.cost if result.charged else 0,
                "existingSession": not result.charged,
                "session": selectors.unlock_as_json(result.unlock, now=now),
                "creditsRemaining": remaining,
            }
        )


class ComponentAccessApi(APIView):
    @extend_schema(responses={200: AnyResponse, **ERRORS})
    def get(self, request: Request, component: str) -> Response:
        if component not in catalogue.COMPONENTS:
            raise UnknownComponent(component=component, available=sorted(catalogue.COMPONENTS))
        now = timezone.now()
        unlock = selectors.unlocks_active(user_id=request.user.pk, now=now).filter(
            component=component
        )
        session = unlock.last()
        return ok(
            {
                "component": component,
                "hasAccess": session is not None,
                "session": selectors.unlock_as_json(session, now=now) if session else None,
                "cost": catalogue.COMPONENTS[component].cost,
            }
        )


class ActiveSessionsApi(APIView):
    @extend_schema(responses={200: AnyResponse, 401: AnyResponse})
    def get(self, request: Request) -> Response:
        now = timezone.now()
        sessions = selectors.unlocks_active(user_id=request.user.pk, now=now)
        return ok({"sessions": [selectors.unlock_as_json(s, now=now) for s in sessions]})


class RecentExpirationsApi(APIView):
    @extend_schema(responses={200: AnyResponse, 401: AnyResponse})
    def get(self, request: Request) -> Response:
        now = timezone.now()
        services.unlocks_record_expired(user_id=request.user.pk, now=now)
        expired = selectors.unlocks_recently_expired(user_id=request.user.pk, now=now)
        return ok({"expirations": [selectors.unlock_as_json(s, now=now) for s in expired]})
