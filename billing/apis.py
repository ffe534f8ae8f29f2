"""The SPA's billing API: one view per operation, each calling one service or selector."""

from __future__ import annotations

from typing import Any

from django.utils.decorators import method_decorator
from django_ratelimit.decorators import ratelimit
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, services
from subscriptions import catalogue
from subscriptions.apis import ERRORS, RATE_LIMITED, AnyResponse, _valid, ok
from subscriptions.selectors import available_tiers, bundles_for_sale

BILLING_RATE = "20/m"
ratelimit_billing = method_decorator(
    ratelimit(key="user_or_ip", rate=BILLING_RATE, method="POST", block=True), name="post"
)
INTERVAL_ALIASES = {"month": "month", "monthly": "month", "year": "year", "yearly": "year"}


def _interval(value: str) -> str:
    interval = INTERVAL_ALIASES.get(value.lower())
    if interval is None:
        raise serializers.ValidationError({"interval": ["Use month or year"]})
    return interval


class CheckoutInput(serializers.Serializer):
    tier = serializers.CharField(max_length=32, required=False)
    interval = serializers.CharField(max_length=16, required=False, default="month")
    bundle = serializers.CharField(max_length=64, required=False)
    # The original SPA's shape: a catalogue price (by lookup key) and a mode.
    priceId = serializers.CharField(max_length=64, required=False)
    mode = serializers.ChoiceField(choices=["subscription", "payment"], required=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        price = data.pop("priceId", None)
        if price is not None:
            entry = catalogue.PRICES_BY_LOOKUP_KEY.get(price)
            if entry is None:
                raise serializers.ValidationError({"priceId": ["Not a catalogue price"]})
            if entry.bundle is not None:
                data["bundle"] = entry.bundle.key
            else:
                data["tier"], data["interval"] = entry.tier.key, entry.interval  # type: ignore[union-attr]
        if bool(data.get("tier")) == bool(data.get("bundle")):
            raise serializers.ValidationError("Give either tier (+ interval) or bundle")
        data["interval"] = _interval(data.get("interval", "month"))
        data.pop("mode", None)
        return data


class PlanInput(serializers.Serializer):
    tier = serializers.CharField(max_length=32)
    interval = serializers.CharField(max_length=16, required=False, default="month")

    def validate_interval(self, value: str) -> str:
        return _interval(value)


class CancelInput(serializers.Serializer):
    immediate = serializers.BooleanField(required=False, default=False)


@ratelimit_billing
class CheckoutSessionApi(APIView):
    @extend_schema(
        request=CheckoutInput,
        responses={200: AnyResponse, 409: AnyResponse, **ERRORS, **RATE_LIMITED},
    )
    def post(self, request: Request) -> Response:
        data = _valid(CheckoutInput, request)
        start = services.checkout_session_create(
            user=request.user,
            tier=data.get("tier"),
            interval=data["interval"],
            bundle=data.get("bundle"),
        )
        body = {"url": start.url, "sessionId": start.session_id}
        return Response({"success": True, "data": body, **body})


@ratelimit_billing
class CustomerPortalApi(APIView):
    @extend_schema(request=None, responses={200: AnyResponse, **ERRORS, **RATE_LIMITED})
    def post(self, request: Request) -> Response:
        url = services.portal_session_create(user=request.user)
        return Response({"success": True, "data": {"url": url}, "url": url})


@ratelimit_billing
class ChangePlanApi(APIView):
    @extend_schema(request=PlanInput, responses={200: AnyResponse, **ERRORS, **RATE_LIMITED})
    def post(self, request: Request) -> Response:
        data = _valid(PlanInput, request)
        services.subscription_change_plan(
            user=request.user, tier=data["tier"], interval=data["interval"]
        )
        return ok({"requested": {"tier": data["tier"], "interval": data["interval"]}})


@ratelimit_billing
class CancelSubscriptionApi(APIView):
    @extend_schema(request=CancelInput, responses={200: AnyResponse, **ERRORS, **RATE_LIMITED})
    def post(self, request: Request) -> Response:
        data = _valid(CancelInput, request) if request.data else {"immediate": False}
        services.subscription_cancel(user=request.user, immediate=data["immediate"])
        return ok({"immediate": data["immediate"]})


@ratelimit_billing
class ResumeSubscriptionApi(APIView):
    @extend_schema(request=None, responses={200: AnyResponse, **ERRORS, **RATE_LIMITED})
    def post(self, request: Request) -> Response:
        services.subscription_resume(user=request.user)
        return ok({"resumed": True})


class SubscriptionApi(APIView):
    @extend_schema(responses={200: AnyResponse, **ERRORS})
    def get(self, request: Request) -> Response:
        return ok({"subscription": selectors.subscription_for_user(user=request.user)})


class InvoicesApi(APIView):
    @extend_schema(responses={200: AnyResponse, **ERRORS})
    def get(self, request: Request) -> Response:
        return ok({"invoices": selectors.invoices_recent(user=request.user, limit=10)})


class PaymentMethodsApi(APIView):
    @extend_schema(responses={200: AnyResponse, **ERRORS})
    def get(self, request: Request) -> Response:
        return ok({"paymentMethods": selectors.payment_methods(user=request.user)})


class PricingApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(responses={200: AnyResponse})
    def get(self, request: Request) -> Response:
        prices = [
            {
                "lookupKey": entry.lookup_key,
                "amount": entry.amount_cents,
                "currency": "usd",
                "interval": entry.interval,
                "tier": entry.tier.key if entry.tier else None,
                "bundle": entry.bundle.key if entry.bundle else None,
            }
            for entry in catalogue.price_entries()
        ]
        return ok({"tiers": available_tiers(), "bundles": bundles_for_sale(), "prices": prices})
