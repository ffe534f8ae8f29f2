"""What every page needs to know about the signed-in customer's billing."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from billing.dunning import dunning_for


def dunning(request: HttpRequest) -> dict[str, Any]:
    """The past-due banner (base.html) on every page, not only /billing/."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"dunning": dunning_for(getattr(user, "credit_account", None))}
