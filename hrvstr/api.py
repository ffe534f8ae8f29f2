"""The plumbing every JSON API shares: the envelope, input validation, the schema's error maps.

Every app's ``apis.py`` imports these public names from here (none from another app's
``apis.py``), so an API needs nothing but this module and its own app's services/selectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from hrvstr.errors import InvalidAmount
from hrvstr.parsing import ascii_int

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# The envelope every answer has, for the OpenAPI schema. Envelope serializers declare a field
# named ``data``: DRF's metaclass moves declared fields off the class, so it does not replace
# ``Serializer.data``, which the stubs cannot see (hence ``type: ignore[assignment]`` there).
AnyResponse = inline_serializer(
    "Envelope", fields={"success": serializers.BooleanField(), "data": serializers.JSONField()}
)
ERRORS = {400: AnyResponse, 401: AnyResponse, 402: AnyResponse, 403: AnyResponse}
# Views behind a rate limit also answer 429 (with Retry-After): the schema says so.
RATE_LIMITED = {429: AnyResponse}


class AuthenticatedRequest(Request):
    """The request a view behind ``IsAuthenticated`` (the default permission) gets: its user is
    signed in. An annotation for the type checker only; the view receives a plain ``Request``."""

    user: User


def ok(data: Any, *, code: int = status.HTTP_200_OK) -> Response:
    """A success in the envelope: ``{"success": true, "data": ...}``."""
    return Response({"success": True, "data": data}, status=code)


def valid(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The request body validated by ``serializer_class``; a 400 unless it is a JSON object."""
    if not isinstance(request.data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object"]})
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def bounded_int(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    """Query parameter ``name`` as an integer in ``[low, high]`` (``default`` when absent)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = ascii_int(raw)
    if value is None:
        raise InvalidAmount(f"{name} must be an integer", field=name)
    if not low <= value <= high:
        raise InvalidAmount(f"{name} must be between {low} and {high}", field=name)
    return value
