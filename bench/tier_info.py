"""Tier-info under concurrency 32 next to the framework's floor, in the same gunicorn server.

The floor (``/api/bench/floor``, only served with ``HRVSTR_BENCH_ENDPOINTS=true``) is an
authenticated DRF endpoint doing one primary-key query. Rounds alternate floor, tier-info and
tier-info answered 304 (If-None-Match), so the three see the same machine; medians of the
rounds are quoted. Query counts come from Django's own capture, in this process.

    python bench/tier_info.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Row,
    database_prepare,
    django_setup,
    fmt,
    gunicorn,
    have_wrk,
    log,
    median,
    print_table,
    verdict,
    wrk,
)

CONCURRENCY = 32


def bench_user(email: str):
    """A user with a credit account (created once, reused by later runs)."""
    from django.contrib.auth import get_user_model

    from subscriptions import services

    user_model = get_user_model()
    user = user_model.objects.filter(username=email).first()
    if user is None:
        user = user_model.objects.create_user(username=email, email=email, password=None)
    services.account_create(user=user)
    return user


def access_token(user) -> str:
    from subscriptions.tokens import tokens_issue

    return tokens_issue(user=user).access


def query_counts(token: str) -> dict[str, int]:
    """SQL queries of one warm request each: floor, tier-info 200, tier-info 304."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    counts = {}
    client.get("/api/subscription/tier-info")  # warm the connection
    headers: dict[str, str]
    for name, path, headers in (
        ("floor", "/api/bench/floor", {}),
        ("tier-info", "/api/subscription/tier-info", {}),
    ):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.status_code)
        counts[name] = len(queries)
    etag = response["ETag"]
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/subscription/tier-info", headers={"If-None-Match": etag})
    assert response.status_code == 304
    counts["tier-info 304"] = len(queries)
    return counts


def run(quick: bool = False) -> list[Row]:
    database_prepare()
    token = access_token(bench_user("bench-tier@example.com"))
    counts = query_counts(token)
    rounds, seconds = (2, 2) if quick else (4, 4)
    results: dict[str, list[dict[str, float]]] = {"floor": [], "tier-info": [], "304": []}
    auth = {"Authorization": f"Bearer {token}"}
    with gunicorn() as server:
        import urllib.request

        request = urllib.request.Request(server.url + "/api/subscription/tier-info", headers=auth)
        with urllib.request.urlopen(request) as response:
            etag = response.headers["ETag"]
        cases = {
            "floor": ("/api/bench/floor", auth),
            "tier-info": ("/api/subscription/tier-info", auth),
            "304": ("/api/subscription/tier-info", auth | {"If-None-Match": etag}),
        }
        for path, headers in cases.values():  # warm every worker's connection and imports
            wrk(server.url + path, seconds=1, connections=CONCURRENCY, headers=headers)
        for index in range(rounds):
            order = list(cases) if index % 2 == 0 else list(reversed(cases))
            for name in order:
                path, headers = cases[name]
                results[name].append(
                    wrk(server.url + path, seconds=seconds, connections=CONCURRENCY,
                        headers=headers)
                )  # fmt: skip
                got = results[name][-1]
                log(f"tier-info round {index + 1} {name}: {got['rps']:.0f} req/s "
                    f"p50 {got['p50']:.1f} ms p99 {got['p99']:.1f} ms")  # fmt: skip
                if got["bad"] or got["socket_errors"]:
                    log(f"  {name}: {got['bad']:.0f} bad answers, "
                        f"{got['socket_errors']:.0f} socket errors")  # fmt: skip

    def med(name: str, key: str) -> float:
        return median([r[key] for r in results[name]])

    floor_rps = med("floor", "rps")
    rows = []
    for name, label in (("tier-info", "tier-info 200"), ("304", "tier-info 304")):
        # Each round's ratio pairs runs a few seconds apart; their median resists the drift
        # of a shared machine better than a ratio of two medians.
        share = median(
            [ours["rps"] / floor["rps"] for ours, floor in zip(results[name], results["floor"],
             strict=True)]
        )  # fmt: skip
        rows.append(
            Row(
                "1 tier-info",
                f"{label}, c={CONCURRENCY}, req/s",
                fmt(med(name, "rps"), "req/s"),
                fmt(floor_rps, "req/s (floor)"),
                f"{share:.0%} of floor (median of rounds)",
                ">= 80% of floor",
                verdict(share >= 0.8),
            )
        )
        rows.append(
            Row(
                "1 tier-info",
                f"{label}, p50 / p99",
                f"{med(name, 'p50'):.1f} / {med(name, 'p99'):.1f} ms",
                f"{med('floor', 'p50'):.1f} / {med('floor', 'p99'):.1f} ms (floor)",
                f"{med(name, 'p50') / med('floor', 'p50'):.2f}x p50",
            )
        )
    rows.append(
        Row(
            "1 tier-info",
            "SQL queries: 200 / 304",
            f"{counts['tier-info']} / {counts['tier-info 304']}",
            f"{counts['floor']} (floor)",
            "",
            "<= 2 / <= 1",
            verdict(counts["tier-info"] <= 2 and counts["tier-info 304"] <= 1),
        )
    )
    return rows


if __name__ == "__main__":
    if not have_wrk():
        sys.exit("wrk is needed (apt-get install wrk)")
    django_setup()
    print_table(run(quick="--quick" in sys.argv))
