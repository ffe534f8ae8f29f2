"""Concurrent spends: the app's locked rule against the naive read-check-write, same run.

64 threads, each with its own PostgreSQL connection, spend 1 credit at a time on one hot
account and on 1,000 accounts. More spends are attempted than there are credits, so a
correct rule stops at zero. The baseline is what the original Node service did (read the
balance, check it in the application, write the new balance back, no lock); it lives here,
in the bench, and nowhere in the app. It is expected to lose updates: the table says how many.

The app's rule is also driven through HTTP (gunicorn, wrk with a fresh Idempotency-Key per
request) to give the served throughput.

    python bench/spend.py [--quick]
"""

from __future__ import annotations

import random
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
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

CLIENTS = 64
CHARGE_CLIENTS = 8  # issue 14's concurrency for charged spends
ACTION = "ai_ticker_analysis"  # 1 credit


def accounts_fresh(prefix: str, count: int, credits: int) -> list:
    """``count`` free users holding exactly ``credits`` purchased credits each, with the ledger
    row that explains them (bulk-inserted; a new run id each time, so runs share no rows)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from activities.models import Actor, LedgerEntry, LedgerKind
    from subscriptions.models import CreditAccount
    from subscriptions.periods import add_months

    user_model = get_user_model()
    run = uuid.uuid4().hex[:8]
    now = timezone.now()
    users = user_model.objects.bulk_create(
        [
            user_model(
                username=f"{prefix}-{run}-{n}@bench.example",
                email=f"{prefix}-{run}-{n}@bench.example",
            )
            for n in range(count)
        ]
    )
    accounts = CreditAccount.objects.bulk_create(
        [
            CreditAccount(
                user=user,
                purchased_balance=credits,
                period_start=now,
                period_end=add_months(now, 1),
                period_anchor=now,
            )
            for user in users
        ]
    )
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                user=user,
                kind=LedgerKind.PURCHASE,
                purchased_delta=credits,
                monthly_remaining_after=0,
                purchased_after=credits,
                tier_after="free",
                actor=Actor.SYSTEM,
                idempotency_key=f"bench-seed:{user.pk}",
            )
            for user in users
        ]
    )
    for user, account in zip(users, accounts, strict=True):
        user.credit_account = account
    return users


def spend_locked(user) -> bool:
    from subscriptions import services
    from subscriptions.errors import InsufficientCredits

    try:
        services.credits_spend(
            user=user, action=ACTION, quantity=1, idempotency_key=uuid.uuid4().hex
        )
        return True
    except InsufficientCredits:
        return False


def spend_naive(user) -> bool:
    """The original service's spend: read, check in Python, write the result back. No lock."""
    from activities.models import Actor, LedgerEntry, LedgerKind
    from subscriptions.models import CreditAccount

    account = CreditAccount.objects.get(user_id=user.pk)
    if account.remaining < 1:
        return False
    from_monthly = 1 if account.monthly_remaining >= 1 else 0
    used = account.monthly_used + from_monthly
    purchased = account.purchased_balance - (1 - from_monthly)
    CreditAccount.objects.filter(pk=account.pk).update(
        monthly_used=used, purchased_balance=purchased
    )
    LedgerEntry.objects.create(
        user_id=user.pk,
        kind=LedgerKind.SPEND,
        monthly_delta=-from_monthly,
        purchased_delta=-(1 - from_monthly),
        monthly_remaining_after=account.monthly_allowance - used,
        purchased_after=purchased,
        tier_after=account.tier,
        actor=Actor.USER,
        idempotency_key=f"naive:{uuid.uuid4().hex}",
        details={"action": ACTION, "quantity": 1, "cost": 1},
    )
    return True


def together(clients: int, work) -> tuple[int, float]:
    """``work(index)`` in ``clients`` threads released at once, each on its own connection;
    the sum of what they return, and seconds."""
    from django.db import connections

    barrier = threading.Barrier(clients)

    def client(index: int) -> int:
        try:
            connections["default"].ensure_connection()
            barrier.wait()
            return work(index)
        finally:
            connections.close_all()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        total = sum(pool.map(client, range(clients)))
    return total, time.perf_counter() - start


def hammer(spend, users: list, attempts: int, clients: int = CLIENTS) -> tuple[int, float]:
    """``attempts`` spends from ``clients`` threads over ``users`` (random); successes and
    seconds."""

    def spends(index: int) -> int:
        rng = random.Random(index)
        return sum(spend(users[rng.randrange(len(users))]) for _ in range(attempts // clients))

    return together(clients, spends)


def audit(users: list, credits_each: int, successes: int) -> dict[str, int]:
    """Overdraft (credits handed out beyond what existed) and accounts whose ledger disagrees."""
    from subscriptions.models import CreditAccount
    from subscriptions.selectors import ledger_drift

    accounts = CreditAccount.objects.filter(user__in=users)
    remaining = sum(a.remaining for a in accounts)
    drifted = sum(1 for a in accounts if ledger_drift(account=a))
    handed_out = successes
    existed = credits_each * len(users)
    return {
        "overdraft": max(handed_out - existed, 0),
        "lost": (existed - remaining) - handed_out,  # <0: credits spent but never deducted
        "drifted": drifted,
        "remaining": remaining,
    }


def unlock_all(jobs: list[tuple], clients: int) -> tuple[int, float]:
    """Each (user, component) unlocked once, the jobs shared by ``clients`` threads; charged
    unlocks and seconds."""
    from subscriptions import services

    def unlocks(index: int) -> int:
        return sum(
            services.component_unlock(user=user, component=component).charged
            for user, component in jobs[index::clients]
        )

    return together(clients, unlocks)


def one_statement_against_locked_path(quick: bool) -> list[Row]:
    """Issue 14's charges: one conditional statement (subscriptions/services/charge.py) against
    the locked path every charge took before it (lock, SELECT, check, INSERT, UPDATE, which
    the app still takes when the statement changes nothing), 8 clients, interleaved rounds:
    spends on one hot account, and unlocks of every free component of 100 accounts (an open
    unlock is not charged again, so each is unlocked once). The locked path is forced here by
    answering "not available"."""
    from subscriptions import catalogue
    from subscriptions.services import charge

    credits = 400 if quick else 1_200
    # Every attempt can succeed: a refused charge takes the locked path in both (the 64-client
    # rows above prove no overdraft with more attempts than credits).
    attempts = credits // CHARGE_CLIENTS * CHARGE_CLIENTS
    free = catalogue.TIERS["free"]
    free_components = [c.key for c in catalogue.COMPONENTS.values() if free.allows(c)]
    unlock_accounts = 25 if quick else 100
    original = charge.available
    statements = {"spend": "charge_in_one_statement", "unlock": "unlock_in_one_statement"}
    originals = {kind: getattr(charge, name) for kind, name in statements.items()}
    answered = {kind: {"asked": 0, "charged": 0} for kind in statements}

    def counted(kind: str):
        def statement(*args, **kwargs):
            answered[kind]["asked"] += 1
            result = originals[kind](*args, **kwargs)
            answered[kind]["charged"] += result is not None
            return result

        return statement

    for kind, name in statements.items():
        setattr(charge, name, counted(kind))
    stats: dict[tuple[str, str], list[dict]] = {}
    try:
        # 3 interleaved rounds in the full run (5 took 87 s): the ratios they give (7x for
        # spends, 2.7x for unlocks on 2026-12-03) are far from the 2x they are held to.
        for index in range(2 if quick else 3):
            order = ("statement", "locked path") if index % 2 == 0 else ("locked path", "statement")
            for name in order:
                charge.available = original if name == "statement" else lambda: False
                users = accounts_fresh(f"charge-{name.split()[0]}", 1, credits)
                successes, seconds = hammer(spend_locked, users, attempts, CHARGE_CLIENTS)
                result = audit(users, credits, successes) | {"rate": successes / seconds}
                stats.setdefault(("spend", name), []).append(result)
                users = accounts_fresh(f"unlock-{name.split()[0]}", unlock_accounts, 1_000)
                jobs = [(user, component) for user in users for component in free_components]
                random.Random(index).shuffle(jobs)
                charged, seconds = unlock_all(jobs, CHARGE_CLIENTS)
                result = audit(users, 1_000, 0) | {"rate": charged / seconds}
                result["wrong"] = charged != len(jobs) or result["drifted"]
                stats.setdefault(("unlock", name), []).append(result)
    finally:
        charge.available = original
        for kind, name in statements.items():
            setattr(charge, name, originals[kind])
    log(f"charges c={CHARGE_CLIENTS}: {stats}")
    rows = []
    for kind, label, unit in (
        ("spend", "1 hot account, spends", "charges/s"),
        ("unlock", f"{unlock_accounts} accounts, unlocks", "unlocks/s"),
    ):
        rate = median([r["rate"] for r in stats[(kind, "statement")]])
        before = median([r["rate"] for r in stats[(kind, "locked path")]])
        got = stats[(kind, "statement")] + stats[(kind, "locked path")]
        if kind == "spend":
            wrong = [r for r in got if r["overdraft"] or r["lost"] or r["drifted"]]
        else:
            wrong = [r for r in got if r["wrong"]]
        share = answered[kind]["charged"] / max(answered[kind]["asked"], 1)
        rows.append(
            Row(
                "2 spends",
                f"{label}, {CHARGE_CLIENTS} clients: as the app charges vs always the locked path",
                f"{fmt(rate, unit)}; the statement charged {share:.0%}",
                fmt(before, f"{unit} (locked path)"),
                f"{rate / before:.1f}x",
                ">= 2x, 0 overdraft" if kind == "spend" else ">= 2x, each charged once",
                verdict(rate / before >= 2 and not wrong),
            )
        )
    return rows


def spend_lua(tokens: list[str]) -> str:
    quoted = ",".join(f'"{t}"' for t in tokens)
    return f"""
local tokens = {{{quoted}}}
local counter = 0
local tid = 0
local n = 0
function setup(thread) n = n + 1; thread:set("tid", n) end
wrk.method = "POST"
wrk.body = '{{"action":"{ACTION}","quantity":1}}'
wrk.headers["Content-Type"] = "application/json"
function request()
  counter = counter + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]
  wrk.headers["Idempotency-Key"] = "{uuid.uuid4().hex[:8]}-" .. tid .. "-" .. counter
  return wrk.format()
end
"""


def run(quick: bool = False) -> list[Row]:
    database_prepare()
    from bench.tier_info import access_token

    rounds = 1 if quick else 2
    hot_credits = 500 if quick else 1_500
    many_credits = 1 if quick else 4
    rows: list[Row] = []
    for label, count, credits in (
        ("1 hot account", 1, hot_credits),
        ("1,000 accounts", 1_000, many_credits),
    ):
        attempts = int(count * credits * 1.5) // CLIENTS * CLIENTS  # more than there is
        stats: dict[str, list[dict]] = {"locked": [], "naive": []}
        for index in range(rounds):
            for name in ("locked", "naive") if index % 2 == 0 else ("naive", "locked"):
                users = accounts_fresh(f"spend-{name}", count, credits)
                spend = spend_locked if name == "locked" else spend_naive
                successes, seconds = hammer(spend, users, attempts)
                result = audit(users, credits, successes) | {
                    "rate": attempts / seconds,
                    "ok_rate": successes / seconds,
                }
                stats[name].append(result)
                log(f"spend {label} {name}: {attempts} attempts in {seconds:.1f} s, "
                    f"{successes} ok, {result}")  # fmt: skip
        for name in ("locked", "naive"):
            got = stats[name]
            overdraft = max(r["overdraft"] for r in got)
            lost = min(r["lost"] for r in got)
            drifted = max(r["drifted"] for r in got)
            rate = median([r["rate"] for r in got])
            if name == "locked":
                rows.append(
                    Row(
                        "2 spends",
                        f"{label}, {CLIENTS} clients, locked (app)",
                        fmt(rate, "attempts/s"),
                        fmt(median([r["rate"] for r in stats["naive"]]), "attempts/s (naive)"),
                        f"{rate / median([r['rate'] for r in stats['naive']]):.2f}x",
                    )
                )
                rows.append(
                    Row(
                        "2 spends",
                        f"{label}, locked: overdraft / lost credits / accounts off ledger",
                        f"{overdraft} / {-lost} / {drifted}",
                        "",
                        "",
                        "0 / 0 / 0",
                        verdict(overdraft == 0 and lost == 0 and drifted == 0),
                    )
                )
            else:
                rows.append(
                    Row(
                        "2 spends",
                        f"{label}, naive (baseline): overdraft / lost / off ledger",
                        f"{overdraft} / {-lost} / {drifted}",
                        "",
                        "",
                        "shows lost updates",
                        verdict(lost < 0 or drifted > 0),
                    )
                )
    rows.extend(one_statement_against_locked_path(quick))
    if have_wrk():
        seconds = 2 if quick else 4
        served = []
        with gunicorn() as server:
            for label, count in (("1 hot account", 1), ("1,000 accounts", 1_000)):
                users = accounts_fresh("spend-http", count, 1_000_000 // count)
                tokens = [access_token(user) for user in users]
                results = [
                    wrk(server.url + "/api/credits/spend", seconds=seconds, connections=CLIENTS,
                        lua=spend_lua(tokens))
                    for _ in range(rounds)
                ]  # fmt: skip
                served.append((label, count, users, results))
        # Audited once the server has stopped: requests still queued when wrk hung up are
        # either finished or dropped by then, so the snapshot is consistent.
        from activities.models import LedgerEntry

        for label, count, users, results in served:
            audited = audit(users, 1_000_000 // count, 0)
            spent = LedgerEntry.objects.filter(user__in=users, kind="spend").count()
            clean = audited["drifted"] == 0 and audited["lost"] == spent
            log(f"spend http {label}: {results}, {spent} spent, {audited}")
            # wrk re-sends a connection's last request when gunicorn's sync workers close it,
            # so about half of wrk's requests are replays of an Idempotency-Key (answered from
            # the ledger, charging nothing). Throughput is counted in ledger rows instead.
            rows.append(
                Row(
                    "2 spends",
                    f"{label}, HTTP POST /api/credits/spend, c={CLIENTS}",
                    fmt(spent / (seconds * len(results)), "spends/s"),
                    f"{median([r['rps'] for r in results]):,.0f} req/s incl. replays; "
                    f"p50 {median([r['p50'] for r in results]):.0f} ms, "
                    f"p99 {median([r['p99'] for r in results]):.0f} ms",
                    "",
                    "ledger == account",
                    verdict(clean and not any(r["bad"] for r in results)),
                )
            )
    return rows


if __name__ == "__main__":
    django_setup()
    print_table(run(quick="--quick" in sys.argv))
