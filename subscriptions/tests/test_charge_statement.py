"""On PostgreSQL a charge is one statement: lock, check, charge and ledger row together."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from activities.models import LedgerEntry
from hrvstr.testing import prepared_statement_uses
from subscriptions import services
from subscriptions.models import CreditAccount
from subscriptions.selectors import ledger_drift
from subscriptions.tests.factories import UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path"),
]


@pytest.fixture
def user():
    user = UserFactory.create()
    services.account_get(user=user)
    services.credits_purchase_add(user=user, credits=100, idempotency_key=f"cs_{user.pk}")
    return user


def test_a_spend_is_one_round_trip_and_sums_to_the_ledger(user):
    before = CreditAccount.objects.get(user=user).remaining
    with CaptureQueriesContext(connection) as queries:
        result = services.credits_spend(
            user=user, action="finviz_sentiment", quantity=2, idempotency_key="one"
        )
    assert len(queries) == 1, [q["sql"][:80] for q in queries]
    assert "UPDATE" in queries[0]["sql"] and "INSERT INTO" in queries[0]["sql"]
    account = CreditAccount.objects.get(user=user)
    assert account.remaining == before - 6
    assert result.entry.total_delta == -6 and result.entry.details["cost"] == 6
    assert LedgerEntry.objects.get(pk=result.entry.pk).idempotency_key == f"spend:{user.pk}:one"
    assert ledger_drift(account=account) == {}


def test_a_replay_costs_no_second_charge(user):
    first = services.credits_spend(
        user=user, action="finviz_sentiment", quantity=1, idempotency_key="k"
    )
    again = services.credits_spend(
        user=user, action="finviz_sentiment", quantity=1, idempotency_key="k"
    )
    assert again.replayed and again.entry.pk == first.entry.pk
    assert LedgerEntry.objects.filter(kind="spend").count() == 1


def test_what_fell_due_is_done_first_by_the_locked_path(user):
    # A free account whose month ended: the spend renews it first, then charges.
    CreditAccount.objects.filter(user=user).update(
        period_start=timezone.now() - timedelta(days=40),
        period_end=timezone.now() - timedelta(days=9),
    )
    result = services.credits_spend(
        user=user, action="finviz_sentiment", quantity=1, idempotency_key="after-renewal"
    )
    account = CreditAccount.objects.get(user=user)
    assert account.period_end > timezone.now()
    assert not result.replayed and result.entry.total_delta == -3
    assert ledger_drift(account=account) == {}


def test_an_unlock_is_one_lookup_and_one_statement_and_never_charged_twice(user):
    from activities.models import Activity
    from subscriptions.models import ComponentUnlock

    before = CreditAccount.objects.get(user=user).remaining
    with CaptureQueriesContext(connection) as queries:
        first = services.component_unlock(user=user, component="chart")
    assert len(queries) == 2, [q["sql"][:80] for q in queries]
    assert first.charged and first.entry is not None and first.entry.total_delta == -10
    assert Activity.objects.get(ledger_entry_id=first.entry.pk).title == "Price chart unlocked"
    assert LedgerEntry.objects.get(pk=first.entry.pk).details["unlock_id"] == first.unlock.pk
    with CaptureQueriesContext(connection) as queries:
        again = services.component_unlock(user=user, component="chart")
    assert len(queries) == 1 and not again.charged and again.unlock.pk == first.unlock.pk
    account = CreditAccount.objects.get(user=user)
    assert account.remaining == before - 10
    assert ledger_drift(account=account) == {}
    unlock = ComponentUnlock.objects.get()
    assert unlock.expires_at - unlock.unlocked_at == timedelta(minutes=30)  # the free tier's


def test_the_database_refuses_a_second_open_unlock_of_a_component(user):
    from django.db import IntegrityError, transaction

    from subscriptions.models import ComponentUnlock

    unlock = services.component_unlock(user=user, component="chart").unlock
    with pytest.raises(IntegrityError), transaction.atomic():
        ComponentUnlock.objects.create(
            user=user,
            component="chart",
            tier="free",
            cost=10,
            unlocked_at=unlock.unlocked_at,
            expires_at=unlock.expires_at,
        )


def test_spends_while_the_allowance_changes_under_them_stay_within_it(user):
    """Found by the soak (a 500 on a spend as a plan ended): PostgreSQL re-checks the row an
    UPDATE targets when a concurrent write got there first, but the split between allowance
    and purchased credits had been worked out on the row as it was. Spends racing a writer that
    shrinks and grows the allowance (as a plan ending and a new one starting do, under the row
    lock) must each succeed or be refused, never break the CHECK."""
    import threading
    import time

    from django.db import connections, transaction
    from django.db.models import F
    from django.db.models.functions import Least

    CreditAccount.objects.filter(user=user).update(monthly_allowance=2000, monthly_used=40)
    services.credits_purchase_add(user=user, credits=10_000, idempotency_key="cs_more")
    stop = time.monotonic() + 3
    failures: list[str] = []
    charged: list[int] = []

    def plan_changes() -> None:
        try:
            small = True
            while time.monotonic() < stop:
                with transaction.atomic():
                    CreditAccount.objects.select_for_update().get(user=user)
                    changed = CreditAccount.objects.filter(user=user)
                    if small:
                        changed.update(
                            monthly_allowance=50, monthly_used=Least(F("monthly_used"), 50)
                        )
                    else:
                        changed.update(monthly_allowance=2000)
                small = not small
        finally:
            connections.close_all()

    def spends(worker: int) -> None:
        try:
            count = 0
            while time.monotonic() < stop:
                count += 1
                try:
                    services.credits_spend(
                        user=user,
                        action="finviz_sentiment",
                        quantity=1,
                        idempotency_key=f"race-{worker}-{count}",
                    )
                except Exception as exc:  # any failure is the finding
                    failures.append(repr(exc)[:160])
                else:
                    charged.append(worker)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=plan_changes)]
    threads += [threading.Thread(target=spends, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [], (len(failures), failures[:2])
    # (The stand-in writer moves the allowance without ledger rows: only the spends are
    # counted here.) Every spend that answered has its row, and only those.
    assert LedgerEntry.objects.filter(user=user, kind="spend").count() == len(charged) > 0


def test_contended_charges_are_each_one_statement_and_split_on_the_row_they_charge(
    user, monkeypatch
):
    """Eight clients charging one account at once, across the end of its allowance: the
    statement charges every one of them (a split worked out before the UPDATE got its lock
    disagreed with the row 9 times in 10 and sent those charges to the locked path), and the
    allowance is used to exactly its size before purchased credits are touched."""
    from hrvstr.tests.concurrency import run_together
    from subscriptions.services import charge

    CreditAccount.objects.filter(user=user).update(monthly_allowance=20, monthly_used=0)
    answered: list[bool] = []
    statement = charge.charge_in_one_statement

    def counted(**kwargs):
        entry = statement(**kwargs)
        answered.append(entry is not None)
        return entry

    monkeypatch.setattr(charge, "charge_in_one_statement", counted)

    def spends(worker: int) -> None:
        for count in range(6):
            services.credits_spend(
                user=user,
                action="ai_ticker_analysis",
                quantity=1,
                idempotency_key=f"contended-{worker}-{count}",
            )

    run_together(8, spends)
    assert answered == [True] * 48
    account = CreditAccount.objects.get(user=user)
    assert (account.monthly_used, account.purchased_balance) == (20, 100 - 28)
    spent = LedgerEntry.objects.filter(user=user, kind="spend")
    # (The allowance was set without a ledger row: the spends' rows are compared alone.)
    assert sum(row.monthly_delta for row in spent) == -20
    assert sum(row.purchased_delta for row in spent) == -28


def test_charges_and_unlocks_are_planned_once_per_connection(user):
    """Both statements run prepared after their first ``prepare_threshold`` runs."""
    for key in range(7):
        services.credits_spend(
            user=user, action="finviz_sentiment", quantity=1, idempotency_key=f"p{key}"
        )
    for _ in range(7):  # one open unlock per user and component: seven users
        other = UserFactory.create()
        services.account_get(user=other)
        services.credits_purchase_add(user=other, credits=20, idempotency_key=f"cs_{other.pk}")
        assert services.component_unlock(user=other, component="chart").charged
    prepared_runs = 7 - connection.connection.prepare_threshold
    assert prepared_statement_uses("AND a.tier = $") == [prepared_runs]  # the charge
    assert prepared_statement_uses("AND a.tier = ANY($") == [prepared_runs]  # the unlock
    for account in CreditAccount.objects.all():
        assert ledger_drift(account=account) == {}
