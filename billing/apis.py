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
from hrvstr.api import ERRORS, RATE_LIMITED, AnyResponse, AuthenticatedRequest, ok, valid
from subscriptions import catalogue
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
    # The original SPA's shape: a catalogue price (a lookup key, or a Stripe price id whose
    # lookup key is in the catalogue), a mode, a quantity of 1 and its own return pages.
    priceId = serializers.CharField(max_length=255, required=False)
    mode = serializers.ChoiceField(choices=["subscription", "payment"], required=False)
    quantity = serializers.IntegerField(min_value=1, max_value=1, required=False)
    successUrl = serializers.CharField(max_length=2048, required=False)
    cancelUrl = serializers.CharField(max_length=2048, required=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        price = data.pop("priceId", None)
        data.pop("quantity", None)
        if price is not None:
            entry = services.checkout_price_entry(price=price)
            if data.get("mode") and data["mode"] != ("payment" if entry.bundle else "subscription"):
                raise serializers.ValidationError({"mode": ["Does not match the price"]})
            if entry.bundle is not None:
                data["bundle"] = entry.bundle.key
            elif entry.tier is not None:  # a catalogue price sells a bundle or a tier
                data["tier"], data["interval"] = entry.tier.key, entry.interval
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


class CheckoutStartOut(serializers.Serializer):
    url = serializers.CharField(help_text="Stripe Checkout's page: send the customer there")
    sessionId = serializers.CharField()


class CheckoutStartEnvelope(CheckoutStartOut):
    success = serializers.BooleanField()
    data = CheckoutStartOut()  # type: ignore[assignment]  # a field, not Serializer.data


class PortalOut(serializers.Serializer):
    url = serializers.CharField()


class PortalEnvelope(PortalOut):
    success = serializers.BooleanField()
    data = PortalOut()  # type: ignore[assignment]  # a field, not Serializer.data


@ratelimit_billing
class CheckoutSessionApi(APIView):
    @extend_schema(
        request=CheckoutInput,
        responses={200: CheckoutStartEnvelope, 409: AnyResponse, **ERRORS, **RATE_LIMITED},
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        data = valid(CheckoutInput, request)
        start = services.checkout_session_create(
            user=request.user,
            tier=data.get("tier"),
            interval=data["interval"],
            bundle=data.get("bundle"),
            success_url=data.get("successUrl"),
            cancel_url=data.get("cancelUrl"),
        )
        body = {"url": start.url, "sessionId": start.session_id}
        return Response(CheckoutStartEnvelope({"success": True, "data": body, **body}).data)


@ratelimit_billing
class CustomerPortalApi(APIView):
    @extend_schema(request=None, responses={200: PortalEnvelope, **ERRORS, **RATE_LIMITED})
    def post(self, request: AuthenticatedRequest) -> Response:
        url = services.portal_session_create(user=request.user)
        return Response(PortalEnvelope({"success": True, "data": {"url": url}, "url": url}).data)


@ratelimit_billing
class ChangePlanApi(APIView):
    @extend_schema(request=PlanInput, responses={200: AnyResponse, **ERRORS, **RATE_LIMITED})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = valid(PlanInput, request)
        services.subscription_change_plan(
            user=request.user, tier=data["tier"], interval=data["interval"]
        )
        return ok({"requested": {"tier": data["tier"], "interval": data["interval"]}})


@ratelimit_billing
class CancelSubscriptionApi(APIView):
    @extend_schema(request=CancelInput, responses={200: AnyResponse, **ERRORS, **RATE_LIMITED})
    def post(self, request: AuthenticatedRequest) -> Response:
        data = valid(CancelInput, request) if request.data else {"immediate": False}
        services.subscription_cancel(user=request.user, immediate=data["immediate"])
        return ok({"immediate": data["immediate"]})


@ratelimit_billing
class ResumeSubscriptionApi(APIView):
    @extend_schema(request=None, responses={200: AnyResponse, **ERRORS, **RATE_LIMITED})
    def post(self, request: AuthenticatedRequest) -> Response:
        services.subscription_resume(user=request.user)
        return ok({"resumed": True})


class SubscriptionOut(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.CharField()
    plan = serializers.CharField(allow_null=True)
    amount = serializers.IntegerField(allow_null=True, help_text="cents")
    currency = serializers.CharField(allow_null=True)
    interval = serializers.CharField(allow_null=True)
    currentPeriodStart = serializers.CharField(allow_null=True)
    currentPeriodEnd = serializers.CharField(allow_null=True)
    cancelAtPeriodEnd = serializers.BooleanField()
    pendingTier = serializers.CharField(allow_null=True)


class SubscriptionEnvelope(serializers.Serializer):
    """``data`` is the subscription itself, or null (the original SPA's shape)."""

    success = serializers.BooleanField()
    data = SubscriptionOut(allow_null=True)  # type: ignore[assignment]  # a field, not Serializer.data
    subscription = SubscriptionOut(allow_null=True)


class InvoiceOut(serializers.Serializer):
    id = serializers.CharField()
    amount = serializers.IntegerField(help_text="cents")
    currency = serializers.CharField(allow_null=True)
    status = serializers.CharField(allow_null=True)
    date = serializers.CharField(allow_null=True)
    description = serializers.CharField(allow_blank=True, allow_null=True)
    downloadUrl = serializers.CharField(allow_null=True)
    # Beyond what the SPA reads (the billing page shows them): Stripe's invoice number, its
    # hosted page and PDF, and the status said for the customer.
    number = serializers.CharField(allow_null=True)
    hostedUrl = serializers.CharField(allow_null=True)
    pdfUrl = serializers.CharField(allow_null=True)
    statusText = serializers.CharField()


class InvoicesEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    data = InvoiceOut(many=True)  # type: ignore[assignment]  # a field, not Serializer.data
    invoices = InvoiceOut(many=True)


class PaymentMethodOut(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField(allow_null=True)
    brand = serializers.CharField(allow_null=True)
    last4 = serializers.CharField(allow_null=True)
    expMonth = serializers.IntegerField(allow_null=True)
    expYear = serializers.IntegerField(allow_null=True)
    isDefault = serializers.BooleanField()


class PaymentMethodsEnvelope(serializers.Serializer):
    success = serializers.BooleanField()
    data = PaymentMethodOut(many=True)  # type: ignore[assignment]  # a field, not Serializer.data
    paymentMethods = PaymentMethodOut(many=True)


class SubscriptionApi(APIView):
    @extend_schema(responses={200: SubscriptionEnvelope, **ERRORS})
    def get(self, request: AuthenticatedRequest) -> Response:
        subscription = selectors.subscription_for_user(user=request.user)
        body = {"success": True, "data": subscription, "subscription": subscription}
        return Response(SubscriptionEnvelope(body).data)


class InvoicesApi(APIView):
    @extend_schema(responses={200: InvoicesEnvelope, **ERRORS})
    def get(self, request: AuthenticatedRequest) -> Response:
        invoices = selectors.invoices_recent(user=request.user, limit=10)
        body = {"success": True, "data": invoices, "invoices": invoices}
        return Response(InvoicesEnvelope(body).data)


class PaymentMethodsApi(APIView):
    @extend_schema(responses={200: PaymentMethodsEnvelope, **ERRORS})
    def get(self, request: AuthenticatedRequest) -> Response:
        methods = selectors.payment_methods(user=request.user)
        body = {"success": True, "data": methods, "paymentMethods": methods}
        return Response(PaymentMethodsEnvelope(body).data)


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
