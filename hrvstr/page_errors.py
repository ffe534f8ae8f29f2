"""The one place that turns domain errors into pages (the API's twin is hrvstr.errors).

Views raise or let through ``DomainError``s; ``page_errors`` renders them with the error's
status and message, plus a next step chosen by the error's code. Rate limits arrive here too
(django-ratelimit raises ``Ratelimited``), so every page action answers a 429 the same way.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_ratelimit.exceptions import Ratelimited

from hrvstr.errors import DomainError, ServiceUnavailable, _is_lock_timeout

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NextStep:
    title: str
    link_text: str = ""
    url_name: str = ""


# What a person can do about each kind of failure. Unlisted codes get the generic answer.
NEXT_STEPS: dict[str, NextStep] = {
    "stripe_unavailable": NextStep("Payments are unreachable right now"),
    "stripe_not_configured": NextStep("Payments are not set up on this server"),
    "stripe_error": NextStep("Stripe refused the request"),
    "price_missing": NextStep("This plan is not on sale yet"),
    "card_declined": NextStep("Your card was declined", "Manage billing", "billing"),
    "rate_limited": NextStep("Too many requests"),
    "service_unavailable": NextStep("We are busy, please retry"),
    "insufficient_credits": NextStep("Not enough credits", "Buy credits", "billing"),
    "already_subscribed": NextStep("You already have a plan", "Change your plan", "pricing"),
    "bundle_requires_paid_tier": NextStep(
        "Credit bundles come with paid plans", "See plans", "pricing"
    ),
    "no_stripe_customer": NextStep("No billing account yet", "Choose a plan", "pricing"),
    "no_subscription": NextStep("No active subscription", "See plans", "pricing"),
    "unknown_plan": NextStep("Unknown plan", "See plans", "pricing"),
}
GENERIC = NextStep("Something went wrong")
RATE_LIMITED_MESSAGE = "You did that too often. Please wait a minute and try again."


def back_url(request: HttpRequest, default: str) -> str:
    """Where the form came from (its ``next`` field), if it is one of our own pages."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def error_page(
    request: HttpRequest, *, code: str, message: str, status: int, retry_after: int | None = None
) -> HttpResponse:
    step = NEXT_STEPS.get(code, GENERIC)
    context = {
        "title": step.title,
        "message": message,
        "code": code,
        "next_link": (step.link_text, reverse(step.url_name)) if step.url_name else None,
        "back": back_url(request, reverse("billing")),
    }
    response = render(request, "error.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def page_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Render a page's domain errors and rate limits as readable error pages."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Ratelimited:
            return error_page(
                request,
                code="rate_limited",
                message=RATE_LIMITED_MESSAGE,
                status=429,
                retry_after=60,  # our limits are per minute
            )
        except DomainError as exc:
            if exc.extra.get("action") == "redirect_to_pricing":
                messages.info(request, exc.message)
                return HttpResponseRedirect(reverse("pricing"))
            if exc.status >= 500:
                logger.warning("page %s: %s (%s)", request.path, exc.code, exc.message)
            status = exc.status if exc.status != 401 else 400
            return error_page(request, code=exc.code, message=exc.message, status=status)
        except OperationalError as exc:
            # A row lock not had in time (PostgreSQL's lock_timeout): busy, not broken.
            if not _is_lock_timeout(exc):
                raise
            logger.warning("page %s: lock timeout", request.path)
            busy = ServiceUnavailable()
            return error_page(
                request, code=busy.code, message=busy.message, status=503, retry_after=1
            )

    return wrapper
