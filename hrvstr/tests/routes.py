"""The project's routes and which are public by design: what the authorization, CSP,
route-fuzz and password-form tests walk."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver

# Open to anyone by design (the catalogue, sign-up and log-in, the API docs, health, Stripe).
PUBLIC = {
    "/api/auth/register",
    "/api/auth/token",
    "/api/auth/token/refresh",
    # The SPA's: a token in the body (refresh), a Google ID token, and a logout that revokes
    # when a valid bearer token comes with it and answers 200 without one.
    "/api/auth/refresh",
    "/api/auth/google-login",
    "/api/auth/logout",
    "/api/subscription/available-tiers",
    "/api/billing/pricing",
    "/api/billing/webhook",
    "/api/schema/",
    "/api/docs/",
    "/healthz",
    # Server-rendered pages a visitor needs before having an account (session auth; a bearer
    # token, good or bad, is not how pages authenticate, so these ignore it).
    "/signup/",
    "/login/",
    "/password-reset/",
    "/password-reset/sent/",
    "/reset/chart/chart/",
    "/reset/done/",
    "/pricing/",
    # Stripe's return for SPA checkouts: says "activating", then goes on to a trusted origin.
    "/billing/return/",
}


# Django's admin and dj-stripe's own webhook URL have their own guards (tested below / by
# the signature tests); static and media files are not views of ours.
SKIP_PREFIXES = ("/admin/", "/stripe/", "/static/", "/media/", "/__")


def routes(
    skip_prefixes: tuple[str, ...] = SKIP_PREFIXES, samples: dict[str, str] | None = None
) -> list[str]:
    """Every concrete path we serve, with sample arguments for its converters."""
    samples = {
        "int": "1",
        "str": "chart",
        "slug": "chart",
        "uuid": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
    } | (samples or {})
    found: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + route)
            elif isinstance(pattern, URLPattern):
                path = prefix + route
                for name, converter in pattern.pattern.converters.items():
                    kind = type(converter).__name__.replace("Converter", "").lower()
                    # A sample named after the argument wins over one for its converter.
                    sample = samples.get(name, samples.get(kind, "1"))
                    path = path.replace(f"<{kind}:{name}>", sample)
                    path = path.replace(f"<{name}>", samples.get(name, "chart"))
                if "<" in path or "(" in path or "^" in path:
                    continue  # regex routes belong to third parties (admin, dj-stripe)
                found.append("/" + path)

    walk(get_resolver().url_patterns, "")
    return sorted({p for p in found if not p.startswith(skip_prefixes)})
