"""Growth: tier-info and the activity feed for users with 10, 10,000 and 1,000,000 rows
(``--quick`` on a bench database without the million yet: 100,000, built in seconds rather
than a minute).

Each size is one user with that many ledger rows and as many activity rows, COPY-ed into
PostgreSQL once and kept in the bench database for later runs. Rounds alternate the sizes;
latency is wrk's p50 at concurrency 4 (medians over rounds), and the ratio is against the
10-row user in the same run: a flat endpoint stays near 1x.

    python bench/growth.py [--quick]
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Row,
    database_prepare,
    django_setup,
    gunicorn,
    have_wrk,
    log,
    median,
    print_table,
    verdict,
    wrk,
)

SIZES = (10, 10_000, 1_000_000)
QUICK_SIZES = (10, 10_000, 100_000)
CONCURRENCY = 4
FLAT = 2.0  # "flat": within 2x of the 10-row user's p50


def built(size: int) -> bool:
    """Whether the bench database already has the user with ``size`` rows. Once the million
    is there, quick runs use it: a user made after it would hold the newest ids, and the
    million-row user's first feed page would then be found by walking back past that user's
    rows (the planner reads the primary key backwards for a user owning most of the table)."""
    from activities.models import LedgerEntry

    return LedgerEntry.objects.filter(user__username=f"growth-{size}@bench.example").count() >= size


def user_with_rows(size: int):
    """The user with ``size`` ledger and activity rows (inserted once with COPY)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from activities.models import Activity, LedgerEntry
    from subscriptions import services

    email = f"growth-{size}@bench.example"
    user_model = get_user_model()
    user = user_model.objects.filter(username=email).first()
    if user is None:
        user = user_model.objects.create_user(username=email, email=email, password=None)
    services.account_create(user=user)
    have = LedgerEntry.objects.filter(user=user).count()
    if have >= size and Activity.objects.filter(user=user).count() >= size:
        return user
    started = time.perf_counter()
    now = "2026-01-01 00:00:00+00"
    with connection.cursor() as cursor:
        raw = cursor.connection  # psycopg 3: COPY from a generated text stream
        ledger = io.StringIO()
        for n in range(have, size):
            ledger.write(
                f"{user.pk}\tadjustment\t0\t0\t0\t0\tfree\tsystem\tgrowth row\t\t"
                f"growth:{user.pk}:{n}\t{{}}\t{now}\n"
            )
        ledger.seek(0)
        columns = (
            "user_id, kind, monthly_delta, purchased_delta, monthly_remaining_after, "
            "purchased_after, tier_after, actor, reason, source, idempotency_key, details, "
            "created_at"
        )
        with raw.cursor() as copy_cursor:
            with copy_cursor.copy(
                f"COPY {LedgerEntry._meta.db_table} ({columns}) FROM STDIN"
            ) as copy:
                while chunk := ledger.read(1 << 20):
                    copy.write(chunk)
            existing = Activity.objects.filter(user=user).count()
            activities = io.StringIO()
            for n in range(existing, size):
                kind = "credits_adjusted" if n % 2 else "allowance_reset"
                activities.write(f"{user.pk}\t{kind}\tGrowth row {n}\t\t\t{now}\n")
            activities.seek(0)
            with copy_cursor.copy(
                f"COPY {Activity._meta.db_table} "
                "(user_id, activity_type, title, description, symbol, created_at) FROM STDIN"
            ) as copy:
                while chunk := activities.read(1 << 20):
                    copy.write(chunk)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {LedgerEntry._meta.db_table}")
        cursor.execute(f"VACUUM ANALYZE {Activity._meta.db_table}")
    log(f"growth: {size:,} rows for {email} in {time.perf_counter() - started:.1f} s")
    return user


def rotate_lua(paths: list[str]) -> str:
    """A wrk script asking for ``paths`` in turn (one second warms them all)."""
    quoted = ",".join(f'"{path}"' for path in paths)
    return f"""
local paths = {{{quoted}}}
local counter = 0
function request()
  counter = counter + 1
  return wrk.format("GET", paths[counter % #paths + 1])
end
"""


def cases_for(user, token: str) -> dict[str, tuple[str, dict]]:
    """The URLs measured for one user: tier-info and the feed at its start, deep and by cursor."""
    from django.db.models import Max, Min

    from activities.models import Activity

    auth = {"Authorization": f"Bearer {token}"}
    # A user's rows are COPY-ed in one block (user_with_rows), so the id halfway between its
    # first and last is halfway down its feed. Finding it by OFFSET (count // 2) took 20.6 s
    # of every run for the million-row user, the table being mostly that user's.
    ids = Activity.objects.filter(user=user).aggregate(first=Min("id"), last=Max("id"))
    middle = (ids["first"] + ids["last"]) // 2 if ids["first"] is not None else 0
    return {
        "tier-info": ("/api/subscription/tier-info", auth),
        "feed page 1": ("/api/activity?page=1&limit=10", auth),
        "feed page 100": ("/api/activity?page=100&limit=10", auth),
        "feed by cursor, halfway": (f"/api/activity?before={middle}&limit=10", auth),
    }


def run(quick: bool = False) -> list[Row]:
    database_prepare()
    from bench.tier_info import access_token

    sizes = QUICK_SIZES if quick and not built(SIZES[-1]) else SIZES
    users = {size: user_with_rows(size) for size in sizes}
    cases = {size: cases_for(user, access_token(user)) for size, user in users.items()}
    # 2 s of wrk a case (24 cases in the full run): 800 requests or more at c=4 for each p50.
    # 3 s took 24 s more of the run for p50s within the same spread (tier-info 2.9-4.8 ms,
    # the feed 8.8-13.7 ms, with either, on 2026-12-03).
    rounds, seconds = (1, 1) if quick else (2, 2)
    p50: dict[tuple[int, str], list[float]] = {}
    with gunicorn() as server:
        for size in sizes:  # warm: connections, caches, the buffer pool; each size's URLs in turn
            paths = [path for path, _ in cases[size].values()]
            headers = next(iter(cases[size].values()))[1]
            lua = rotate_lua(paths)
            wrk(server.url, seconds=1, connections=CONCURRENCY, headers=headers, lua=lua)
        for index in range(rounds):
            for size in sizes if index % 2 == 0 else tuple(reversed(sizes)):
                for name, (path, headers) in cases[size].items():
                    got = wrk(server.url + path, seconds=seconds, connections=CONCURRENCY,
                              headers=headers)  # fmt: skip
                    if got["bad"]:
                        log(f"growth {size} {name}: {got['bad']:.0f} bad answers")
                    p50.setdefault((size, name), []).append(got["p50"])
                    log(f"growth {size:,} {name}: p50 {got['p50']:.1f} ms p99 {got['p99']:.1f}")
    rows = []
    for name in cases[sizes[0]]:
        # Page 100 is empty for the 10-row user: its baseline is the 10,000-row user's.
        base_size = sizes[1] if name == "feed page 100" else sizes[0]
        base = median(p50[(base_size, name)])
        for size in [s for s in sizes if s > base_size]:
            value = median(p50[(size, name)])
            ratio = value / base
            rows.append(
                Row(
                    "5 growth",
                    f"{name}, {size:,} rows, p50 (c={CONCURRENCY})",
                    f"{value:.1f} ms",
                    f"{base:.1f} ms ({base_size:,} rows)",
                    f"{ratio:.2f}x",
                    f"flat (<= {FLAT:.0f}x)",
                    verdict(ratio <= FLAT),
                )
            )
    return rows


if __name__ == "__main__":
    if not have_wrk():
        sys.exit("wrk is needed (apt-get install wrk)")
    django_setup()
    print_table(run(quick="--quick" in sys.argv))
