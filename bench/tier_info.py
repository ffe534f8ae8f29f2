"""Tier-info under concurrency 32 next to the framework's floor: throughput and CPU per request.

The floor (``/api/bench/floor``, only served with ``HRVSTR_BENCH_ENDPOINTS=true``) is an
authenticated DRF endpoint doing one primary-key query with simplejwt's stock authentication.
Two gunicorns run side by side: one as the production image runs (pooled connections), one as
issue 14 measured (persistent connections with a health check per request). Rounds alternate
the floor, tier-info and tier-info answered 304 (If-None-Match) on the first and the floor on
the second, so all see the same machine; medians of the rounds are quoted. CPU per request is
what the serving workers and every PostgreSQL process used during a round (utime + stime from
/proc) over the requests wrk counted. Query counts come from Django's own capture, in this
process.

    python bench/tier_info.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Row,
    Server,
    cpu_seconds,
    database_prepare,
    django_setup,
    fmt,
    gunicorn,
    have_wrk,
    log,
    median,
    postgres_pids,
    print_table,
    verdict,
    worker_pids,
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


Case = tuple[Server, str, dict[str, str]]  # a server, a path, the request's headers


def serve_rounds(cases: dict[str, Case], rounds: int, seconds: int) -> dict[str, list[dict]]:
    """wrk rounds over ``cases`` (order reversed every other round), each with the CPU the
    serving gunicorn's workers and PostgreSQL used per request, read from /proc."""
    results: dict[str, list[dict]] = {name: [] for name in cases}
    for server, path, headers in cases.values():  # warm every worker's connection and imports
        wrk(server.url + path, seconds=1, connections=CONCURRENCY, headers=headers)
    for index in range(rounds):
        order = list(cases) if index % 2 == 0 else list(reversed(cases))
        for name in order:
            server, path, headers = cases[name]
            app = lambda server=server: worker_pids(server)  # noqa: E731
            with cpu_seconds(app=app, postgres=postgres_pids) as used:
                got = wrk(server.url + path, seconds=seconds, connections=CONCURRENCY,
                          headers=headers)  # fmt: skip
            requests = max(got["requests"], 1.0)
            got["app_ms"] = used["app"] * 1000 / requests
            got["postgres_ms"] = used["postgres"] * 1000 / requests
            got["cpu_ms"] = got["app_ms"] + got["postgres_ms"]
            results[name].append(got)
            log(f"tier-info round {index + 1} {name}: {got['rps']:.0f} req/s "
                f"p50 {got['p50']:.1f} ms p99 {got['p99']:.1f} ms, CPU per request "
                f"{got['app_ms']:.2f} ms app + {got['postgres_ms']:.2f} ms PostgreSQL")  # fmt: skip
            if got["bad"] or got["socket_errors"]:
                log(f"  {name}: {got['bad']:.0f} bad answers, "
                    f"{got['socket_errors']:.0f} socket errors")  # fmt: skip
    return results


def run(quick: bool = False) -> list[Row]:
    database_prepare()
    token = access_token(bench_user("bench-tier@example.com"))
    counts = query_counts(token)
    rounds, seconds = (2, 1) if quick else (4, 3)
    auth = {"Authorization": f"Bearer {token}"}
    floor, tier_info = "/api/bench/floor", "/api/subscription/tier-info"
    # Two servers side by side, their rounds interleaved: as the production image runs
    # (pooled connections, which psycopg checks itself: no request pays a round trip for it),
    # and as issue 14 measured (persistent connections checked by a SELECT 1 per request).
    with (
        gunicorn(DATABASE_POOL="true") as pooled,
        gunicorn(DATABASE_POOL="false", CONN_HEALTH_CHECKS="true") as checked,
    ):
        import urllib.request

        request = urllib.request.Request(pooled.url + tier_info, headers=auth)
        with urllib.request.urlopen(request) as response:
            etag = response.headers["ETag"]
        results = serve_rounds(
            {
                "floor": (pooled, floor, auth),
                "tier-info": (pooled, tier_info, auth),
                "304": (pooled, tier_info, auth | {"If-None-Match": etag}),
                "floor, checked": (checked, floor, auth),
            },
            rounds,
            seconds,
        )

    def med(name: str, key: str) -> float:
        return median([r[key] for r in results[name]])

    def per_round(numerator: str, denominator: str, key: str) -> float:
        """The median of each round's ratio: runs seconds apart, so a shared machine's drift
        cancels better than in a ratio of two medians."""
        pairs = zip(results[numerator], results[denominator], strict=True)
        return median([top[key] / bottom[key] for top, bottom in pairs])

    floor_rps = med("floor", "rps")
    rows = []
    for name, label in (("tier-info", "tier-info 200"), ("304", "tier-info 304")):
        share = per_round(name, "floor", "rps")
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
    efficiency = per_round("floor, checked", "tier-info", "cpu_ms")
    rows.append(
        Row(
            "1 tier-info",
            f"tier-info 200, CPU per request (gunicorn workers + PostgreSQL), c={CONCURRENCY}",
            f"{med('tier-info', 'cpu_ms'):.2f} ms ({med('tier-info', 'app_ms'):.2f} app + "
            f"{med('tier-info', 'postgres_ms'):.2f} PostgreSQL), pooled",
            f"{med('floor, checked', 'cpu_ms'):.2f} ms: the floor as issue 14 measured it "
            "(a health check per request)",
            f"{efficiency:.2f}x the CPU efficiency (median of rounds)",
            ">= 1.3x",
            verdict(efficiency >= 1.3),
        )
    )
    rows.append(
        Row(
            "1 tier-info",
            "the floor, CPU per request: pooled vs a health check per request",
            f"{med('floor', 'cpu_ms'):.2f} ms pooled",
            f"{med('floor, checked', 'cpu_ms'):.2f} ms checked",
            f"{per_round('floor, checked', 'floor', 'cpu_ms'):.2f}x",
        )
    )
    rows.append(
        Row(
            "1 tier-info",
            "tier-info 200 vs its floor, CPU per request, both pooled",
            f"{med('tier-info', 'cpu_ms'):.2f} ms",
            f"{med('floor', 'cpu_ms'):.2f} ms (floor)",
            f"{per_round('tier-info', 'floor', 'cpu_ms'):.2f}x the floor's CPU",
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
