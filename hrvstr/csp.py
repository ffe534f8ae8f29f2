"""The Content-Security-Policy: every page may load scripts, styles, images and fonts from our
own origin only, and send forms to us or to Stripe's hosted pages.

No inline script or style is allowed (none is used: scripts and styles are static files; the
500 page's inline style is allowed by its hash). Policies are dicts of directives, as
django-csp takes them:

- ``CONTENT_SECURITY_POLICY["DIRECTIVES"]``: every response (settings.py builds it from
  ``base_directives`` plus ``CSP_EXTRA`` from the environment);
- ``CSP_SPA_DIRECTIVES``: a policy for a served single-page app (``SPA_CSP_EXTRA`` adds to
  it); its view applies it with ``csp.decorators.csp_override(settings.CSP_SPA_DIRECTIVES)``.

``CSP_EXTRA`` / ``SPA_CSP_EXTRA`` read like a policy: ``"connect-src https://api.example.com;
img-src https://cdn.example.com"`` adds those sources to those directives.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import csp.middleware
from csp.constants import NONE, SELF
from csp.middleware import CSPMiddleware, PolicyParts
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase

# Where our forms send people: Checkout and the customer portal (they answer with a redirect,
# which browsers check against form-action too).
STRIPE_PAGES = ["https://checkout.stripe.com", "https://billing.stripe.com"]

# templates/500.html's <style> (it must not depend on anything that could have failed).
ERROR_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;color:#1a1f2b;max-width:30rem;margin:3rem auto;"
    "padding:0 1rem;line-height:1.5}a{color:#1c5d3f}"
)


def sha256_source(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def base_directives() -> dict[str, list[str]]:
    return {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, sha256_source(ERROR_PAGE_STYLE)],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF, *STRIPE_PAGES],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    }


def with_extra(directives: dict[str, list[str]], extra: str) -> dict[str, list[str]]:
    """``directives`` plus the sources named in ``extra`` ("directive source ...; ...")."""
    merged = {name: list(sources) for name, sources in directives.items()}
    for part in extra.split(";"):
        words = part.split()
        if words:
            name, *sources = words
            merged.setdefault(name.lower(), list(merged.get("default-src", [])))
            merged[name.lower()] += [s for s in sources if s not in merged[name.lower()]]
    return merged


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware; with the offline Stripe, its pages are a form target too.

    The emulator's address (``STRIPE_API_HOST``) is known only at run time (tests pick a free
    port), so it is added per response rather than baked into the settings.
    """

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only=report_only)
        origin = _origin(getattr(settings, "STRIPE_API_HOST", "") or "")
        if origin and not report_only and parts.config is None:
            update = dict(parts.update or {})
            update["form-action"] = [*update.get("form-action", []), origin]
            parts.update = update
        return parts


@lru_cache(maxsize=64)
def _policy_built(parts: str, report_only: bool) -> str:
    return build_policy(**json.loads(parts), report_only=report_only)


def build_policy_once(
    config: Any = None,
    update: Any = None,
    replace: Any = None,
    nonce: str | None = None,
    report_only: bool = False,
) -> str:
    """django-csp's ``build_policy``, built once per process for each distinct policy.

    Its middleware builds both headers from the settings on every response (about 75 us of the
    120 us it spends per response, 28% of a cheap API request in-process): the same strings
    every time unless a view overrides the policy or a page asks for a nonce. A request's nonce
    is never kept, nor a policy JSON cannot express (django-csp's NONCE placeholder, a set of
    sources): those are built every time, as before. The key keeps the parts' insertion order,
    which decides the order of the header's directives."""
    if nonce is not None:
        return build_policy(config, update, replace, nonce, report_only)
    try:
        parts = json.dumps({"config": config, "update": update, "replace": replace})
    except TypeError:  # NONCE, or a set of sources
        return build_policy(config, update, replace, nonce, report_only)
    return _policy_built(parts, report_only)


@receiver(setting_changed)
def _policy_settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _policy_built.cache_clear()


# django-csp's middleware calls the function by its module's global name.
csp.middleware.build_policy = build_policy_once
