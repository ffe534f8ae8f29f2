"""Stripe-shaped API errors: ``{"error": {"type", "code", "message", "param"}}``."""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An error the emulator answers with, shaped like Stripe's."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - Stripe's field name
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.extra = extra or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            err["param"] = self.param
        if request_id:
            err["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        err.update(self.extra)
        return {"error": err}


def not_found(kind: str, object_id: str, param: str = "id") -> StripeError:
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def missing(param: str) -> StripeError:
    return StripeError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def unknown(param: str) -> StripeError:
    return StripeError(
        400,
        f"Received unknown parameter: {param}",
        code="parameter_unknown",
        param=param,
    )


def invalid(param: str, message: str, code: str = "parameter_invalid_empty") -> StripeError:
    return StripeError(400, message, code=code, param=param)


def card_declined(
    decline_code: str = "generic_decline",
    charge: str | None = None,
    *,
    payment_intent: dict[str, Any] | None = None,
    code: str = "card_declined",
    message: str = "Your card was declined.",
) -> StripeError:
    """Stripe's 402 ``card_error``; on a request about a PaymentIntent it carries the
    PaymentIntent (and its payment method), as the SDK's ``CardError.error.payment_intent``."""
    extra: dict[str, Any] = {"decline_code": decline_code}
    if charge:
        extra["charge"] = charge
    if payment_intent is not None:
        extra["payment_intent"] = payment_intent
    return StripeError(402, message, type="card_error", code=code, extra=extra)
