"""Domain errors and the one place that turns them into HTTP answers.

A domain error carries a stable machine ``code`` (for the SPA), a message for people, an HTTP
status and optional extra fields. Services raise them; the DRF exception handler below and
the pages' error rendering are the only translators.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


class DomainError(Exception):
    code = "error"
    status = 400
    message = "Request failed"

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.message
        self.extra = extra
        super().__init__(self.message)

    def payload(self) -> dict[str, Any]:
        return {"success": False, "error": self.message, "code": self.code, **self.extra}


class InvalidAmount(DomainError):
    # A number out of range or not a number: in a body, a query string or a header.
    code = "invalid_amount"
    status = 400
    message = "Invalid amount"


class ServiceUnavailable(DomainError):
    code = "service_unavailable"
    status = 503
    message = "The service is busy, please retry"


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    message = "The service is briefly unavailable, please retry"


def _is_lock_timeout(exc: Exception) -> bool:
    # PostgreSQL's lock_timeout / statement_timeout: SQLSTATE 55P03 / 57014.
    cause = getattr(exc, "__cause__", None)
    sqlstate = getattr(cause, "sqlstate", None)
    return sqlstate in {"55P03", "57014"} or "database is locked" in str(exc)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(exc.payload(), status=exc.status)
    if isinstance(exc, Ratelimited):
        return _too_many_requests()
    if isinstance(exc, OperationalError) and _is_lock_timeout(exc):
        logger.warning("lock timeout in %s", context.get("view"))
        response = Response(ServiceUnavailable().payload(), status=503)
        response["Retry-After"] = "1"
        return response
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is restarting or unreachable (seen in the soak while PostgreSQL
        # restarts): nothing was committed, so say "retry shortly" rather than 500.
        logger.warning("database unavailable in %s: %s", context.get("view"), exc)
        response = Response(DatabaseUnavailable().payload(), status=503)
        response["Retry-After"] = "5"
        return response
    handled = exception_handler(exc, context)
    if handled is None:
        return None
    response = handled
    detail = response.data
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "success": False,
            "error": "Invalid request",
            "code": "invalid",
            "fields": detail,
        }
    elif isinstance(exc, exceptions.Throttled):
        response.data = {"success": False, "error": "Too many requests", "code": "rate_limited"}
    else:
        message = detail.get("detail", detail) if isinstance(detail, dict) else detail
        response.data = {
            "success": False,
            "error": str(message),
            "code": getattr(exc, "default_code", "error"),
        }
    return response


RATE_LIMITED = {"success": False, "error": "Too many requests, slow down", "code": "rate_limited"}


def _too_many_requests() -> Response:
    response = Response(RATE_LIMITED, status=status.HTTP_429_TOO_MANY_REQUESTS)
    response["Retry-After"] = "60"  # our limits are per minute
    return response


def ratelimited(request: HttpRequest, exception: Exception) -> JsonResponse:
    """django-ratelimit's view for a refused page request: 429 with Retry-After."""
    response = JsonResponse(RATE_LIMITED, status=status.HTTP_429_TOO_MANY_REQUESTS)
    response["Retry-After"] = "60"
    return response


# The API's answer to a request Django routed nowhere (404) or to a method a view does not take.
API_ROUTING_ERRORS = {
    404: ("Not found", "not_found"),
    405: ("Method not allowed", "method_not_allowed"),
}


def is_api_request(request: HttpRequest) -> bool:
    """Under /api/: answered in JSON, errors included."""
    return request.path_info.startswith("/api/")


def api_routing_error(status_code: int) -> JsonResponse:
    message, code = API_ROUTING_ERRORS[status_code]
    return JsonResponse({"success": False, "error": message, "code": code}, status=status_code)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's ``handler404``: the API's JSON error under /api/, Django's page elsewhere.

    Under /api/ the HTML page was rendered and then replaced by the middleware below: wasted
    work, and a 500 where the page cannot render (static files not collected yet)."""
    if is_api_request(request):
        return api_routing_error(404)
    return page_not_found(request, exception)


class ApiErrorsAsJsonMiddleware:
    """Under /api/, a 404 or 405 answered by Django (no route, or a view that only takes POST)
    becomes the API's JSON error instead of an HTML page; answers that are JSON already (DRF's)
    pass unchanged. Only /api/ paths: pages keep the HTML 404, and a catch-all route for a
    served SPA (outside /api/) is not affected. (With DEBUG off, ``not_found`` answers a
    routing 404 in JSON already; this catches the rest.)"""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        response = self.get_response(request)
        if (
            response.status_code in API_ROUTING_ERRORS
            and is_api_request(request)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            replacement = api_routing_error(response.status_code)
            if response.has_header("Allow"):
                replacement["Allow"] = response["Allow"]
            return replacement
        return response
