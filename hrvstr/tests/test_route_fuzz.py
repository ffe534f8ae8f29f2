"""Hostile input to every route: nested, huge and odd-unicode bodies and query strings.

Every path from the URL resolver (test_authorization's enumeration) gets, as a visitor and as
a logged-in customer (JWT and session), GET/POST/PUT/PATCH/DELETE requests whose bodies and
query strings are deeply nested JSON, megabyte strings, invalid UTF-8, odd Unicode (digits
that are not ASCII, right-to-left marks, NULs, lone surrogates escaped in JSON) and random
JSON. Every answer must be below 500, and nothing may change: no user, ledger row, activity,
hold, unlock, webhook delivery or balance (issue 12, item 5).

First a fixed list of the nastiest inputs goes to every route; then hypothesis generates
``HRVSTR_FUZZ_EXAMPLES // 5`` more per route (1 by default, 5 with ``HRVSTR_PROOFS=full``).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from djstripe.models import Event, WebhookEventTrigger
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from activities.models import Activity, LedgerEntry
from hrvstr.testing import proof_size
from hrvstr.tests.routes import routes
from subscriptions.models import ComponentUnlock, CreditAccount, CreditHold
from subscriptions.tokens import tokens_issue

EXAMPLES = max(1, proof_size("HRVSTR_FUZZ_EXAMPLES", small=6, full=25) // 5)
ROUTES = routes()
METHODS = ["get", "post", "put", "patch", "delete"]

ODD = [
    "²",  # a digit to str.isdigit, not to int()
    "٣",  # Arabic-Indic three: int() takes it
    "\uff11",  # fullwidth one
    "1_000",
    "\u202e" + "lol",  # right-to-left override
    "\x00",
    "a\u0301" * 50,  # combining marks
    "\U0001d54f" * 100,  # astral plane
    "\ufeff",
    "-1",
    "9" * 400,
    "",
]
DEEP = "[" * 100_000 + "]" * 100_000
FIXED_BODIES: list[tuple[bytes, str]] = [
    (DEEP.encode(), "application/json"),
    (('{"a":' * 50_000 + "1" + "}" * 50_000).encode(), "application/json"),
    (json.dumps({"email": "x" * 2_000_000, "password": "y"}).encode(), "application/json"),
    (b"\xff\xfe\xfa not utf-8", "application/json"),
    (b'{"action": "\\ud800", "quantity": "\\u0663"}', "application/json"),
    (json.dumps({k: k for k in ODD}).encode(), "application/json"),
    (json.dumps({"action": "ai_ticker_analysis", "quantity": "²"}).encode(), "application/json"),
    (json.dumps([1, 2, 3]).encode(), "application/json"),
    (b"quantity=%C2%B2&tier=%00&email=%ff", "application/x-www-form-urlencoded"),
    (DEEP.encode(), "text/plain"),
]
FIXED_QUERIES = [
    "",
    "quantity=" + quote("²") + "&limit=" + quote("٣") + "&page=" + quote("\uff11"),
    "limit=%ff%fe&offset=" + "9" * 400 + "&before=-1",
    "q=" + quote("\u202e\x00") + "&next=" + quote("//evil.example.com"),
    "&".join(f"k{i}={i}" for i in range(500)),
]


def snapshot() -> tuple:
    return (
        get_user_model().objects.count(),
        LedgerEntry.objects.count(),
        Activity.objects.count(),
        CreditHold.objects.count(),
        ComponentUnlock.objects.count(),
        WebhookEventTrigger.objects.count(),
        Event.objects.count(),
        sorted(
            CreditAccount.objects.values_list(
                "user_id", "tier", "monthly_allowance", "monthly_used", "purchased_balance"
            )
        ),
    )


@pytest.fixture
def callers(owner, settings, stripe_harness):
    """A visitor and the owner (JWT and session); rate limits off so every view is reached."""
    settings.RATELIMIT_ENABLE = False
    token = tokens_issue(user=owner).access

    def make(kind: str) -> APIClient:
        client = APIClient()
        if kind == "customer":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            client.force_login(owner, backend="hrvstr.auth.EmailBackend")
        return client

    return make


def send(client: APIClient, method: str, path: str, query: str, body: bytes, kind: str) -> int:
    url = f"{path}?{query}" if query else path
    response = getattr(client, method)(url, data=body, content_type=kind)
    return response.status_code


def test_the_nastiest_inputs_to_every_route_get_4xx_and_change_nothing(callers):
    before = snapshot()
    failures: list[tuple[str, str, str, bytes | str, int]] = []
    for caller in ("visitor", "customer"):
        client = callers(caller)
        for path in ROUTES:
            for body, kind in FIXED_BODIES:
                for method in ("post", "put"):
                    status = send(client, method, path, "", body, kind)
                    if status >= 500:
                        failures.append((caller, method, path, body[:40], status))
            for query in FIXED_QUERIES:
                for method in ("get", "delete"):
                    status = send(client, method, path, query, b"", "application/json")
                    if status >= 500:
                        failures.append((caller, method, path, query[:60], status))
    assert not failures, failures[:20]
    assert snapshot() == before


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
bodies = st.one_of(
    json_values.map(lambda value: (json.dumps(value).encode(), "application/json")),
    st.integers(1, 200_000).map(lambda n: (("[" * n + "]" * n).encode(), "application/json")),
    st.integers(10_000, 1_500_000).map(
        lambda n: (json.dumps({"email": "é" * n, "action": "x"}).encode(), "application/json")
    ),
    st.binary(max_size=256).map(lambda raw: (raw, "application/json")),
    st.dictionaries(st.sampled_from(ODD + ["quantity", "action", "tier", "email"]), st.text())
    .map(lambda d: "&".join(f"{quote(k)}={quote(v)}" for k, v in d.items()).encode())
    .map(lambda raw: (raw, "application/x-www-form-urlencoded")),
)
queries = st.dictionaries(
    st.sampled_from(["quantity", "limit", "offset", "before", "page", "type", "q", "next"])
    | st.text(max_size=8),
    st.sampled_from(ODD) | st.text(max_size=40),
    max_size=4,
).map(lambda d: "&".join(f"{quote(k)}={quote(v)}" for k, v in d.items()))


@pytest.mark.parametrize("path", ROUTES)
def test_generated_hostile_requests_get_4xx_and_change_nothing(callers, path):
    before = snapshot()
    clients = {kind: callers(kind) for kind in ("visitor", "customer")}
    failures: list[tuple] = []

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        caller=st.sampled_from(sorted(clients)),
        method=st.sampled_from(METHODS),
        query=queries,
        body=bodies,
    )
    def one(caller, method, query, body):
        raw, kind = body
        if method in ("get", "delete"):
            raw, kind = b"", "application/json"
        status = send(clients[caller], method, path, query, raw, kind)
        if status >= 500:
            failures.append((caller, method, query[:60], raw[:60], status))

    one()
    assert not failures, failures[:10]
    assert snapshot() == before
