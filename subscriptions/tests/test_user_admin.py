from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from activities.models import Actor, LedgerEntry, LedgerKind
from conftest import logged_in
from subscriptions.models import CreditAccount
from subscriptions.tests.factories import allowance_spent
from subscriptions.tests.helpers import CHANGELIST, adjust

pytestmark = pytest.mark.django_db


def change_url(user) -> str:
    return f"/admin/auth/user/{user.pk}/change/"


def test_members_and_visitors_cannot_open_the_admin(client, owner_client):
    for c in (client, owner_client):
        response = c.get(CHANGELIST)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_user_list_shows_tier_credits_and_stripe_status(admin_client, owner):
    CreditAccount.objects.filter(user=owner).update(
        tier="pro", monthly_allowance=500, subscription_status="active"
    )
    html = admin_client.get(CHANGELIST).content.decode()
    assert "owner@example.com" in html
    assert '<td class="field-tier">Pro</td>' in html
    assert '<td class="field-credits_left">500</td>' in html
    assert '<td class="field-stripe_status">Active</td>' in html


def test_it_searches_by_email_and_stripe_customer_id(admin_client, owner, other_user):
    CreditAccount.objects.filter(user=other_user).update(stripe_customer_id="cus_FINDME")
    by_customer = admin_client.get(CHANGELIST, {"q": "cus_FINDME"}).content.decode()
    assert "other@example.com" in by_customer and "owner@example.com" not in by_customer
    by_email = admin_client.get(CHANGELIST, {"q": "owner@"}).content.decode()
    assert "owner@example.com" in by_email and "other@example.com" not in by_email


def test_it_filters_by_tier_and_status(admin_client, owner, other_user):
    CreditAccount.objects.filter(user=owner).update(tier="elite", subscription_status="past_due")
    html = admin_client.get(CHANGELIST, {"credit_account__tier": "elite"}).content.decode()
    assert "owner@example.com" in html and "other@example.com" not in html
    html = admin_client.get(
        CHANGELIST, {"credit_account__subscription_status": "past_due"}
    ).content.decode()
    assert "owner@example.com" in html and "other@example.com" not in html


def test_the_user_page_has_the_credit_account_inline_and_action_buttons(admin_client, owner):
    html = admin_client.get(change_url(owner)).content.decode()
    assert "credit_account-heading" in html
    assert "Purchased balance" in html and "Stripe customer id" in html
    assert f"/admin/auth/user/{owner.pk}/support/adjust_credits/" in html
    assert "/admin/activities/ledgerentry/?q=owner%40example.com" in html


def test_granting_credits_asks_for_a_reason_and_records_the_staff_member(
    admin_client, staff, owner
):
    response, _ = adjust(admin_client, owner, amount="40", reason="Outage on 3 Nov")
    assert response.status_code == 302
    entry = LedgerEntry.objects.get(user=owner, kind=LedgerKind.ADJUSTMENT)
    assert (entry.purchased_delta, entry.actor, entry.actor_user) == (40, Actor.STAFF, staff)
    assert entry.reason == "Outage on 3 Nov"
    assert CreditAccount.objects.get(user=owner).purchased_balance == 40
    log = LogEntry.objects.get(object_id=str(owner.pk))
    assert log.user == staff and "Outage on 3 Nov" in log.change_message


def test_no_reason_no_change(admin_client, owner):
    response, _ = adjust(admin_client, owner, amount="40", reason="   ")
    assert response.status_code == 200
    assert (
        "A reason is required" in response.content.decode()
        or "required" in response.content.decode()
    )
    assert not LedgerEntry.objects.filter(user=owner, kind="adjustment").exists()


def test_a_double_submitted_form_grants_once(admin_client, owner):
    _, token = adjust(admin_client, owner, amount="40", reason="goodwill")
    body = {
        "action": "adjust_credits",
        "_selected_action": [owner.pk],
        "apply": "1",
        "token": token,
        "amount": "40",
        "reason": "goodwill",
    }
    admin_client.post(CHANGELIST, body)
    assert CreditAccount.objects.get(user=owner).purchased_balance == 40
    assert LedgerEntry.objects.filter(user=owner, kind="adjustment").count() == 1


def test_removing_more_than_the_account_holds_is_refused_with_a_message(admin_client, owner):
    allowance_spent(owner)
    response, _ = adjust(admin_client, owner, amount="-5", reason="mistake")
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("Cannot remove more credits than the account holds" in m for m in messages)
    assert not LedgerEntry.objects.filter(user=owner, kind="adjustment").exists()


def test_removing_credits_takes_purchased_first(admin_client, owner):
    adjust(admin_client, owner, amount="40", reason="grant")
    adjust(admin_client, owner, amount="-15", reason="partly undo")
    assert CreditAccount.objects.get(user=owner).purchased_balance == 25


def test_the_same_action_from_the_users_page(admin_client, staff, owner):
    url = f"/admin/auth/user/{owner.pk}/support/adjust_credits/"
    page = admin_client.get(url)
    assert "Grant or remove credits" in page.content.decode()
    token = page.context["form"]["token"].value()
    response = admin_client.post(
        url, {"apply": "1", "token": token, "amount": "7", "reason": "from the user page"}
    )
    assert response.status_code == 302 and response["Location"] == change_url(owner)
    assert CreditAccount.objects.get(user=owner).purchased_balance == 7
    assert admin_client.get(f"/admin/auth/user/{owner.pk}/support/nonsense/").status_code == 302


def test_setting_an_institutional_allowance(admin_client, owner):
    CreditAccount.objects.filter(user=owner).update(tier="institutional", monthly_allowance=5000)
    url = f"/admin/auth/user/{owner.pk}/support/set_allowance/"
    token = admin_client.get(url).context["form"]["token"].value()
    admin_client.post(
        url, {"apply": "1", "token": token, "allowance": "12000", "reason": "contract"}
    )
    account = CreditAccount.objects.get(user=owner)
    assert (account.custom_allowance, account.monthly_allowance) == (12000, 12000)
    entry = LedgerEntry.objects.get(user=owner, kind=LedgerKind.ALLOWANCE_CHANGE)
    assert entry.reason == "contract" and entry.monthly_delta == 7000


def test_resync_from_stripe(admin_client, owner, stripe_harness):
    url = f"/admin/auth/user/{owner.pk}/support/resync_from_stripe/"
    token = admin_client.get(url).context["form"]["token"].value()
    response = admin_client.post(
        url, {"apply": "1", "token": token, "reason": "customer says plan is wrong"}, follow=True
    )
    assert "resynced from Stripe: in sync" in response.content.decode()


def test_the_support_group_can_view_and_adjust_but_not_delete_users(agent_client, owner):
    assert agent_client.get(CHANGELIST).status_code == 200
    page = agent_client.get(change_url(owner)).content.decode()
    assert f"/admin/auth/user/{owner.pk}/support/adjust_credits/" in page
    assert 'name="_save"' not in page  # view-only: the user itself cannot be edited
    adjust(agent_client, owner, amount="10", reason="support ticket 42")
    assert CreditAccount.objects.get(user=owner).purchased_balance == 10
    assert (
        agent_client.post(f"/admin/auth/user/{owner.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert agent_client.post(change_url(owner), {"email": "x@example.com"}).status_code == 403
    assert agent_client.get("/admin/auth/user/add/").status_code == 403


def test_the_support_group_cannot_touch_stripe_keys(agent_client, admin_client):
    assert agent_client.get("/admin/djstripe/apikey/").status_code == 403
    assert agent_client.get("/admin/djstripe/apikey/add/").status_code == 403
    assert admin_client.get("/admin/djstripe/apikey/").status_code == 200


def test_staff_without_the_permission_get_no_actions(owner):
    from django.contrib.auth.models import Permission

    owner.is_staff = True
    owner.save()
    owner.user_permissions.add(Permission.objects.get(codename="view_user"))
    client = logged_in(owner)
    html = client.get(CHANGELIST).content.decode()
    assert "adjust_credits" not in html
    assert client.get(f"/admin/auth/user/{owner.pk}/support/adjust_credits/").status_code == 403


def test_the_support_group_exists_with_its_permissions(support_agent):
    assert support_agent.has_perm("subscriptions.adjust_credits")
    assert support_agent.has_perm("subscriptions.resync_billing")
    assert support_agent.has_perm("auth.view_user")
    assert not support_agent.has_perm("auth.delete_user")
    assert not support_agent.has_perm("auth.change_user")
    assert not support_agent.has_perm("djstripe.view_apikey")
    assert not support_agent.has_perm("djstripe.change_apikey")


def test_a_non_staff_member_gets_no_admin(owner):
    assert logged_in(owner).get("/admin/auth/user/").status_code == 302


def test_credits_and_the_latest_ledger_rows_come_before_the_form(admin_client, staff, owner):
    CreditAccount.objects.filter(user=owner).update(
        tier="pro", monthly_allowance=500, monthly_used=0, subscription_status="active"
    )
    for n in range(12):
        adjust(admin_client, owner, amount=str(n + 1), reason=f"grant number {n + 1}")
    long_reason = "Customer wrote three times about the outage on 3 Nov; " * 4
    adjust(admin_client, owner, amount="-2", reason=long_reason.strip())
    html = admin_client.get(change_url(owner)).content.decode()
    summary = html.index('id="support-summary"')
    assert html.index('id="user_form"') < summary < html.index('name="username"')
    assert summary < html.index("credit_account-heading")  # the full inline stays below
    panel = html[summary : html.index('name="username"')]
    assert '<th scope="row">Tier</th><td>Pro' in panel
    assert "<strong>576</strong>" in panel  # 500 monthly + 78 granted - 2
    assert "500 of 500 left (0 used)" in panel and "Active" in panel
    ledger = html[html.index('id="ledger-latest"') : html.index('name="username"')]
    assert ledger.count("Staff adjustment") == 10  # the latest ten, newest first
    assert ledger.index("-2 purchased") < ledger.index("+12 purchased")
    assert "grant number 3<" not in ledger  # older than the latest ten
    assert f'title="{long_reason.strip()}"' in ledger  # whole on hover, cut in the cell
    assert "Staff (staff@example.com)" in ledger


def test_the_support_group_sees_the_same_panel(agent_client, owner):
    html = agent_client.get(change_url(owner)).content.decode()
    assert 'id="credits-panel"' in html and 'id="ledger-latest"' in html
    assert "Monthly allowance reset" in html or "No ledger rows yet." in html
