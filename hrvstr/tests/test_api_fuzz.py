"""Schema-driven fuzzing of the whole REST API (schemathesis), as a logged-in user.

Every operation in ``/api/schema/`` gets generated requests, valid and invalid, through the
real WSGI application (JWT, middleware, rate limits, the offline Stripe behind billing). Two
checks hold for every answer: no 5xx, and the status code is one the schema documents for
that operation. ``HRVSTR_FUZZ_EXAMPLES`` sets the cases per operation and mode: 6 by default,
25 with ``HRVSTR_PROOFS=full`` (CI).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from hrvstr.testing import proof_size
from subscriptions.tokens import tokens_issue

EXAMPLES = proof_size("HRVSTR_FUZZ_EXAMPLES", small=3, full=25)
FIGURES: dict[str, int] = {"operations": 0, "cases": 0}


@pytest.fixture
def schema(db):
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from hrvstr.wsgi import application

    # As Django's test client does: the end of a request must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def fuzz(operation, mode, headers: dict[str, str], failures: list[str]) -> None:
    """Up to EXAMPLES generated requests for one operation; failures are collected."""

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case):
        FIGURES["cases"] += 1
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
        except (Exception, BaseExceptionGroup) as exc:  # collect them all, report once
            first = str(exc).strip().splitlines()[0]
            failures.append(f"{operation.label} [{mode.value}] -> {response.status_code}: {first}")

    try:
        one()
    except Unsatisfiable:
        # Nothing to make invalid (no parameters, no body): negative mode has no cases.
        assert mode == GenerationMode.NEGATIVE, operation.label


def _no_google_certs(url: str, method: str = "GET", **kwargs):
    return SimpleNamespace(status=200, data=b"{}")


@pytest.mark.parametrize("rate_limits", [True, False], ids=["limited", "unlimited"])
def test_no_operation_answers_5xx_or_an_undocumented_status(
    schema, owner, stripe_harness, settings, rate_limits, monkeypatch
):
    # With limits on, most cases of a limited view meet the (documented) 429; with them off,
    # every case reaches the view.
    settings.RATELIMIT_ENABLE = rate_limits
    # Google sign-in configured, with a certificate set (fetched locally) that verifies nothing.
    settings.GOOGLE_CLIENT_IDS = ["fuzz.apps.googleusercontent.com"]
    monkeypatch.setattr("subscriptions.google_auth.google_transport", lambda: _no_google_certs)
    FIGURES.update(operations=0, cases=0)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        FIGURES["operations"] += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # A fresh token each time: fuzzing POST /api/auth/logout revokes the user's tokens.
            headers = {"Authorization": f"Bearer {tokens_issue(user=owner).access}"}
            fuzz(operation, mode, headers, failures)
    print(f"\nschemathesis: {FIGURES['operations']} operations, {FIGURES['cases']} cases")
    assert not failures, "\n".join(sorted(set(failures)))
