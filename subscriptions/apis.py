"""The SPA's REST API for tiers and credits. Views parse, call one service or selector, answer."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from django.http import HttpResponse, HttpResponseNotModified
from django.utils import timezone
from django.utils.decorators import method_decorator
from django_ratelimit.decorators import ratelimit
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from activities.models import LedgerEntry
from activities.selectors import ledger_for_user
from hrvstr.api import (
    ERRORS,
    RATE_LIMITED,
    AnyResponse,
    AuthenticatedRequest,
    bounded_int,
    ok,
    valid,
)
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
    def get(self, request: AuthenticatedRequest) -> HttpResponse:
        now = timezone.now()
        account = services.account_get(user=request.user, now=now)
        payload = {"success": True, "data": selectors.tier_info(account=account, now=now)}
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        # The ETag is a hash of the answer itself: it changes exactly when the data does. The
        # bytes hashed are the bytes sent (rendered once, not again by DRF's renderer).
        etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
        response: HttpResponse
        if etag in request.headers.get("If-None-Match", ""):
            response = HttpResponseNotModified()
        else:
            response = HttpResponse(body, content_type="application/json")
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
    def get(self, request: AuthenticatedRequest) -> Response:
        now = timezone.now()
        account = services.account_get(user=request.user, now=now)
        return ok(selectors.usage_stats(account=account, now=now))


class CreditsSummaryOut(serializers.Serializer):
    monthly = serializers.IntegerField()
    purchased = serializers.IntegerField()
    used = serializers.IntegerField()
    total = serializers.IntegerField()
    remaining = serializers.IntegerField()
    monthlyRemaining = serializers.IntegerField()
    resetDate = serializers.CharField(allow_null=True)
    daysUntilReset = serializers.IntegerField()
    tier = serializers.CharField()


class SpaBalanceOut(serializers.Serializer):
    remaining = serializers.IntegerField()
    total = serializers.IntegerField()
    used = serializers.IntegerField()
    monthly_allocation = serializers.IntegerField()
    purchased = serializers.IntegerField()
    tier = serializers.CharField()


class TierLimitsOut(serializers.Serializer):
    monthly_credits = serializers.IntegerField()
    can_purchase = serializers.BooleanField()
    features = serializers.ListField(child=serializers.CharField(), help_text="actions")
    discount_rate = serializers.FloatField()


class BalanceOut(serializers.Serializer):
    """The original's shape at the top level (``balance``, ``tierLimits``, ``creditCosts``);
    ``data`` keeps this API's earlier shape for its other clients."""

    success = serializers.BooleanField()
    balance = SpaBalanceOut()
    tierLimits = TierLimitsOut()
    creditCosts = serializers.DictField(child=serializers.IntegerField(), help_text="base costs")
    data = CreditsSummaryOut()  # type: ignore[assignment]  # a field, not Serializer.data


class BalanceApi(APIView):
    @extend_schema(responses={200: BalanceOut, 401: AnyResponse})
    def get(self, request: AuthenticatedRequest) -> Response:
        now = timezone.now()
        account = services.account_get(user=request.user, now=now)
        return Response(BalanceOut(selectors.balance(account=account, now=now)).data)


class CostDataOut(serializers.Serializer):
    action = serializers.CharField()
    quantity = serializers.IntegerField()
    cost = serializers.IntegerField()


class CostOut(CostDataOut):
    """What this user pays (tier discount applied), at the top level as the SPA reads it."""

    success = serializers.BooleanField()
    baseCost = serializers.IntegerField()
    discount = serializers.IntegerField()
    discountRate = serializers.FloatField()
    tier = serializers.CharField()
    hasAccess = serializers.BooleanField()
    data = CostDataOut()  # type: ignore[assignment]  # a field, not Serializer.data


class CostApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("quantity", int, required=False)],
        responses={200: CostOut, **ERRORS},
    )
    def get(self, request: AuthenticatedRequest, action: str) -> Response:
        raw = request.query_params.get("quantity", "1")
        quantity = ascii_int(raw)
        if quantity is None:
            # Not str.isdigit(): "²" is a digit to it, and int("²") then fails with a 500.
            raise InvalidAmount("quantity must be a positive integer", quantity=raw[:32])
        account = services.account_get(user=request.user)
        quote = selectors.action_quote(action=action, quantity=quantity, tier=account.tier)
        return Response(CostOut({"success": True, **quote, "data": quote}).data)


class TransactionsApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, required=False),
            OpenApiParameter("offset", int, required=False),
            OpenApiParameter("before", int, required=False, description="keyset: rows below id"),
        ],
        responses={200: AnyResponse, **ERRORS},
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        limit = bounded_int(request, "limit", default=20, low=1, high=100)
        offset = bounded_int(request, "offset", default=0, low=0, high=1_000_000)
        before = bounded_int(request, "before", default=0, low=0, high=2**62)
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


@ratelimit_spend
class SpendApi(APIView):
    @extend_schema(
        request=QuantityInput,
        responses={200: AnyResponse, 409: AnyResponse, **ERRORS, **RATE_LIMITED},
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        data = valid(QuantityInput, request)
        result = services.credits_spend(
            user=request.user,
            action=data["action"],
            quantity=data["quantity"],
            idempotency_key=idempotency_key_from(request),
        )
        if not result.replayed:
            # At once for the common case; the scheduled sweep catches every other path.
            services.after_spend_run(
                account=request.user.credit_account, remaining=result.entry.remaining_after
            )
        response = ok(spend_as_json(result.entry))
        response["Idempotent-Replayed"] = "true" if result.replayed else "false"
        return response


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
    def post(self, request: AuthenticatedRequest) -> Response:
        data = valid(QuantityInput, request)
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
    def post(self, request: AuthenticatedRequest, hold_id: int) -> Response:
        return ok(hold_as_json(services.credits_hold_capture(user=request.user, hold_id=hold_id)))


class HoldReleaseApi(APIView):
    @extend_schema(
        request=None,
        responses={200: AnyResponse, 401: AnyResponse, 404: AnyResponse, 409: AnyResponse},
    )
    def post(self, request: AuthenticatedRequest, hold_id: int) -> Response:
        return ok(hold_as_json(services.credits_hold_release(user=request.user, hold_id=hold_id)))


class UnlockInput(serializers.Serializer):
    component = serializers.CharField(max_length=64)


class UnlockSessionOut(serializers.Serializer):
    id = serializers.IntegerField()
    session_id = serializers.CharField()
    component = serializers.CharField()
    name = serializers.CharField()
    creditsUsed = serializers.IntegerField()
    unlockedAt = serializers.CharField(allow_null=True)
    expiresAt = serializers.CharField(allow_null=True)
    secondsRemaining = serializers.IntegerField()
    timeRemainingHours = serializers.FloatField()
    tier = serializers.CharField()


class UnlockDataOut(serializers.Serializer):
    unlocked = serializers.BooleanField()
    charged = serializers.BooleanField()
    creditsUsed = serializers.IntegerField()
    existingSession = serializers.BooleanField()
    session = UnlockSessionOut()
    creditsRemaining = serializers.IntegerField()


class UnlockOut(serializers.Serializer):
    """The SPA reads the session at the top level; ``data`` keeps the earlier shape."""

    success = serializers.BooleanField()
    sessionId = serializers.CharField()
    expiresAt = serializers.CharField()
    creditsUsed = serializers.IntegerField()
    existingSession = serializers.BooleanField()
    timeRemaining = serializers.FloatField(help_text="hours, to a tenth")
    creditsRemaining = serializers.IntegerField()
    data = UnlockDataOut()  # type: ignore[assignment]  # a field, not Serializer.data


@ratelimit_unlock
class UnlockComponentApi(APIView):
    @extend_schema(request=UnlockInput, responses={200: UnlockOut, **ERRORS, **RATE_LIMITED})
    def post(self, request: AuthenticatedRequest) -> Response:
        # The SPA also sends ``cost``: ignored, the server prices (UnlockInput drops it).
        data = valid(UnlockInput, request)
        result = services.component_unlock(user=request.user, component=data["component"])
        now = timezone.now()
        if result.entry is not None:
            remaining = result.entry.remaining_after
        else:  # nothing changed: the account read with the request is current
            remaining = services.account_get(user=request.user, now=now).remaining
        session = selectors.unlock_as_json(result.unlock, now=now)
        body = {
            "unlocked": True,
            "charged": result.charged,
            "creditsUsed": result.unlock.cost if result.charged else 0,
            "existingSession": not result.charged,
            "session": session,
            "creditsRemaining": remaining,
        }
        spa = {
            "sessionId": session["session_id"],
            "expiresAt": session["expiresAt"],
            "timeRemaining": session["timeRemainingHours"],
        }
        return Response(UnlockOut({"success": True, **body, **spa, "data": body}).data)


class ComponentAccessDataOut(serializers.Serializer):
    component = serializers.CharField()
    hasAccess = serializers.BooleanField()
    session = UnlockSessionOut(allow_null=True)
    cost = serializers.IntegerField()


class ComponentAccessOut(ComponentAccessDataOut):
    success = serializers.BooleanField()
    data = ComponentAccessDataOut()  # type: ignore[assignment]  # a field, not Serializer.data


class ComponentAccessApi(APIView):
    @extend_schema(responses={200: ComponentAccessOut, **ERRORS})
    def get(self, request: AuthenticatedRequest, component: str) -> Response:
        if component not in catalogue.COMPONENTS:
            raise UnknownComponent(component=component, available=sorted(catalogue.COMPONENTS))
        now = timezone.now()
        unlock = selectors.unlocks_active(user_id=request.user.pk, now=now).filter(
            component=component
        )
        session = unlock.last()
        body = {
            "component": component,
            "hasAccess": session is not None,
            "session": selectors.unlock_as_json(session, now=now) if session else None,
            "cost": catalogue.COMPONENTS[component].cost,
        }
        return Response(ComponentAccessOut({"success": True, **body, "data": body}).data)


class ActiveSessionsApi(APIView):
    @extend_schema(responses={200: AnyResponse, 401: AnyResponse})
    def get(self, request: AuthenticatedRequest) -> Response:
        now = timezone.now()
        sessions = selectors.unlocks_active(user_id=request.user.pk, now=now)
        return ok({"sessions": [selectors.unlock_as_json(s, now=now) for s in sessions]})


class ExpirationOut(UnlockSessionOut):
    expiredAt = serializers.CharField(allow_null=True)
    description = serializers.CharField()


class ExpirationsDataOut(serializers.Serializer):
    expirations = ExpirationOut(many=True)


class ExpirationsOut(ExpirationsDataOut):
    success = serializers.BooleanField()
    data = ExpirationsDataOut()  # type: ignore[assignment]  # a field, not Serializer.data


class RecentExpirationsApi(APIView):
    @extend_schema(responses={200: ExpirationsOut, 401: AnyResponse})
    def get(self, request: AuthenticatedRequest) -> Response:
        now = timezone.now()
        services.unlocks_record_expired(user_id=request.user.pk, now=now)
        expired = selectors.unlocks_recently_expired(user_id=request.user.pk, now=now)
        rows = [selectors.expiration_as_json(unlock, now=now) for unlock in expired]
        body = {"expirations": rows}
        return Response(ExpirationsOut({"success": True, **body, "data": body}).data)
