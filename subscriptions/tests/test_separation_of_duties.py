"""Separation of duties: staff change anyone's credits but their own (issue 12, item 6).

The admin actions, the ``credits_adjust`` command and the services themselves refuse a staff
member's own account; a second staff member can do it and is the one on the ledger row.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from activities.models import LedgerEntry
from hrvstr.errors import DomainError
from subscriptions.models import CreditAccount
from subscriptions.services import account_get, allowance_override_set, credits_adjust
from subscriptions.tests.helpers import CHANGELIST, adjust

pytestmark = pytest.mark.django_db


def balances(user) -> tuple[int, int, int | None]:
    account = CreditAccount.objects.get(user=user)
    return account.purchased_balance, account.monthly_used, account.custom_allowance


def test_the_admin_refuses_a_staff_member_granting_themselves_credits(admin_client, staff):
    account_get(user=staff)
    before, ledger = balances(staff), LedgerEntry.objects.count()
    response, _ = adjust(admin_client, staff, amount="5000", reason="I deserve it")
    assert response.status_code == 302
    shown = [str(m) for m in admin_client.get(CHANGELIST).context["messages"]]
    assert any("cannot change their own credits" in m for m in shown), shown
    assert balances(staff) == before and LedgerEntry.objects.count() == ledger


def test_the_admin_lets_a_second_staff_member_grant_them(agent_client, support_agent, staff):
    account_get(user=staff)
    response, _ = adjust(agent_client, staff, amount="30", reason="Goodwill for the outage")
    assert response.status_code == 302
    assert balances(staff)[0] == 30
    assert LedgerEntry.objects.filter(user=staff).latest("pk").actor_user == support_agent


def test_the_admin_refuses_a_staff_member_sizing_their_own_allowance(agent_client, support_agent):
    account_get(user=support_agent)
    page = agent_client.post(
        CHANGELIST, {"action": "set_allowance", "_selected_action": [support_agent.pk]}
    )
    token = page.context["form"]["token"].value()
    response = agent_client.post(
        CHANGELIST,
        {
            "action": "set_allowance",
            "_selected_action": [support_agent.pk],
            "apply": "1",
            "token": token,
            "allowance": "100000",
            "reason": "for me",
        },
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert any("cannot change their own credits" in m for m in shown), shown
    assert balances(support_agent)[2] is None
    # Only the account's opening allowance (every account has it from sign-up).
    assert not LedgerEntry.objects.filter(user=support_agent).exclude(kind="period_reset").exists()


def test_the_services_refuse_the_staff_members_own_account(staff):
    account_get(user=staff)
    with pytest.raises(DomainError) as refused:
        credits_adjust(user=staff, amount=10, reason="x", staff_user=staff, idempotency_key="a")
    assert (refused.value.code, refused.value.status) == ("self_adjustment_refused", 403)
    with pytest.raises(DomainError) as refused:
        allowance_override_set(
            user=staff, allowance=9000, reason="x", staff_user=staff, idempotency_key="b"
        )
    assert refused.value.code == "self_adjustment_refused"
    assert balances(staff) == (0, 0, None)


def test_the_command_refuses_self_grants_and_unattributed_grants_to_staff(staff, support_agent):
    account_get(user=staff)
    for args in (
        ["--email", staff.email, "--staff", staff.email],  # themselves
        ["--email", staff.email],  # staff, as "system": nobody accountable
    ):
        with pytest.raises(CommandError):
            call_command("credits_adjust", *args, "--amount", "50", "--reason", "r")
    assert balances(staff)[0] == 0
    out = StringIO()
    call_command(
        "credits_adjust",
        *["--email", staff.email, "--staff", support_agent.email],
        *["--amount", "50", "--reason", "approved by the second agent"],
        stdout=out,
    )
    assert balances(staff)[0] == 50
    assert LedgerEntry.objects.filter(user=staff).latest("pk").actor_user == support_agent
