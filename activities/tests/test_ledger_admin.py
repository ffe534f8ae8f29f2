"""The ledger in the admin: read-only for everyone, each row linked to the Stripe object
behind it."""

from __future__ import annotations

import pytest

from activities.models import LedgerEntry
from billing.tests.harness import checkout_and_pay
from subscriptions.services import credits_adjust

pytestmark = pytest.mark.django_db


def grant(user, amount=50, key="g1"):
    return credits_adjust(
        user=user, amount=amount, reason="goodwill", staff_user=None, idempotency_key=key
    )


def test_the_ledger_is_read_only_even_for_superusers(admin_client, owner):
    entry = grant(owner)
    base = "/admin/activities/ledgerentry/"
    assert admin_client.get(base).status_code == 200
    page = admin_client.get(f"{base}{entry.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin_client.post(f"{base}{entry.pk}/change/", {"reason": "x"}).status_code == 403
    assert admin_client.post(f"{base}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get(f"{base}add/").status_code == 403
    body = {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    admin_client.post(base, body)
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()


def test_ledger_rows_link_to_the_stripe_object_behind_them(
    admin_client, owner_client, owner, stripe_harness
):
    session_id = checkout_and_pay(
        owner_client, stripe_harness, {"tier": "pro", "interval": "month"}
    )
    checkout_and_pay(owner_client, stripe_harness, {"bundle": "credits_250"})
    html = admin_client.get("/admin/activities/ledgerentry/").content.decode()
    purchase = LedgerEntry.objects.get(user=owner, kind="purchase")
    assert purchase.source.startswith("cs_") and purchase.source != session_id
    assert f'href="/admin/djstripe/session/?id={purchase.source}"' in html
    assert f"https://dashboard.stripe.com/test/checkout/sessions/{purchase.source}" in html
    # The link finds dj-stripe's copy of the session.
    found = admin_client.get(f"/admin/djstripe/session/?id={purchase.source}").content.decode()
    assert "1 session" in found and purchase.source in found
    sources = set(LedgerEntry.objects.filter(user=owner).values_list("source", flat=True))
    for source in sources - {purchase.source, ""}:  # "": the opening allowance
        model = {"in_": "invoice", "evt": "event", "sub": "subscription"}[source[:3]]
        assert f'href="/admin/djstripe/{model}/?id={source}"' in html
        assert admin_client.get(f"/admin/djstripe/{model}/?id={source}").status_code == 200


def test_source_links_know_events_invoices_and_plain_sources(admin_client):
    from activities.admin import source_links

    assert 'href="/admin/djstripe/event/?id=evt_1"' in source_links("evt_1")
    assert "dashboard.stripe.com/invoices/in_1" in source_links("in_1", livemode=True)
    assert source_links("staff-resync:3") == "staff-resync:3"


def test_the_support_group_can_read_the_ledger_but_not_change_it(agent_client, owner):
    entry = grant(owner)
    assert agent_client.get("/admin/activities/ledgerentry/").status_code == 200
    assert agent_client.post(f"/admin/activities/ledgerentry/{entry.pk}/delete/").status_code == 403


def test_the_ledger_list_fits_and_keeps_long_text_readable(admin_client, owner):
    reason = "Refund of the March invoice after the outage; agreed with finance in ticket 812. " * 3
    grant(owner, amount=50, key="r0")
    entry = credits_adjust(
        user=owner, amount=-20, reason=reason.strip(), staff_user=None, idempotency_key="r1"
    )
    html = admin_client.get("/admin/activities/ledgerentry/").content.decode()
    assert "/static/hrvstr/support.css" in html  # the column widths
    table = html[html.index('<table id="result_list">') :]
    headers = table[: table.index("</thead>")]
    assert headers.count('<th scope="col"') == 8
    row = table[table.index(f'href="/admin/activities/ledgerentry/{entry.pk}/change/"') :]
    row = row[: row.index("</tr>")]
    assert f'<span class="ledger-reason" title="{reason.strip()}">' in row
    assert "…</span>" in row  # cut in the cell
    assert "-20 purchased" in row and 'title="50 monthly + 30 purchased">80<' in row
    assert 'Staff adjustment<br><span class="quiet">by System</span>' in row
