from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Callers whose address we cannot know (a unix-socket server leaves REMOTE_ADDR empty) share
# one rate-limit bucket: django-ratelimit needs an address, and a made-up one per request would
# be a way around the limits.
UNKNOWN_ADDRESS = "0.0.0.0"


class AuthenticatedHttpRequest(HttpRequest):
    """The request a ``@login_required`` (or admin) view gets: its user is signed in.

    An annotation for the type checker only (django-stubs' documented pattern); at run time the
    view receives a plain ``HttpRequest``.
    """

    user: User


def _address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str:
    """The caller's address, trusting X-Forwarded-For only as far as our own proxies reach.

    With ``TRUSTED_PROXY_COUNT = n`` the n-th address from the right is the client (each trusted
    proxy appends the address it saw); with 0 the header is ignored, so a client cannot pick
    the address that rate limits are keyed on. Always a valid IP address (rate limits parse it).
    """
    hops = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        ]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= hops and (address := _address(forwarded[-hops])):
            return address
    return _address(request.META.get("REMOTE_ADDR", "") or "") or UNKNOWN_ADDRESS
