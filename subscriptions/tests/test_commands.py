from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from activities.models import LedgerEntry
from subscriptions.models import CreditAccount
from subscriptions.tests.factories import UserFactory, allowance_spent


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_credits_adjust_grants_through_the_ledger(owner, staff):
    output = run(
        "credits_adjust",
        "--email",
        "OWNER@example.com",
        "--amount",
        "40",
        "--reason",
        "outage",
        "--staff",
        "staff@example.com",
    )
    assert "+40 credits" in output
    entry = LedgerEntry.objects.get(user=owner, kind="adjustment")
    assert (entry.reason, entry.actor_user, entry.actor) == ("outage", staff, "staff")
    assert CreditAccount.objects.get(user=owner).purchased_balance == 40


def test_credits_adjust_with_a_key_runs_once(owner):
    for _ in range(2):
        run(
            "credits_adjust",
            "--email",
            owner.email,
            "--amount",
            "5",
            "--reason",
            "r",
            "--key",
            "t1",
        )
    assert CreditAccount.objects.get(user=owner).purchased_balance == 5


def test_credits_adjust_refuses_what_it_cannot_do(owner):
    allowance_spent(owner)
    with pytest.raises(CommandError, match="No user"):
        run("credits_adjust", "--email", "ghost@example.com", "--amount", "5", "--reason", "r")
    with pytest.raises(CommandError, match="Cannot remove"):
        run("credits_adjust", "--email", owner.email, "--amount", "-5", "--reason", "r")
    with pytest.raises(CommandError, match="No staff"):
        run(
            "credits_adjust",
            "--email",
            owner.email,
            "--amount",
            "5",
            "--reason",
            "r",
            "--staff",
            owner.email,
        )


def test_grant_monthly_allowances_is_idempotent(db):
    user = UserFactory.create()
    with time_machine.travel(timezone.now() + timedelta(days=40), tick=False):
        assert "renewed: 1" in run("grant_monthly_allowances")
        assert "renewed: 0" in run("grant_monthly_allowances")
    assert CreditAccount.objects.get(user=user).period_end > timezone.now()


def test_seed_demo_prints_a_user_that_can_log_in(client, db):
    output = run("seed_demo", "--password", "demo-pass-123")
    assert "demo@hrvstr.local / demo-pass-123" in output
    response = client.post(
        "/api/auth/token",
        {"email": "demo@hrvstr.local", "password": "demo-pass-123"},
        content_type="application/json",
    )
    assert response.status_code == 200
