"""What every page needs to know about the signed-in customer's billing."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from billing import devclock
from billing.dunning import dunning_for


def dunning(request: HttpRequest) -> dict[str, Any]:
    """The past-due banner (base.html) on every page, not only /billing/."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"dunning": dunning_for(getattr(user, "credit_account", None))}


def test_clock(request: HttpRequest) -> dict[str, Any]:
    """``make run`` on the offline Stripe: the footer shows the clock the app and Stripe share,
    and links to the page that moves it (never with real Stripe: ``devclock.allowed``)."""
    clock = devclock.active()
    if clock is None:
        return {}
    return {
        "test_clock": {
            "now": clock(),
            "url": devclock.page_url(request.build_absolute_uri()),
        }
    }
