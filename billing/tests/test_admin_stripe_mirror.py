"""dj-stripe's model admins: read-only for every staff member, listed after our apps and
folded on the admin index."""

from __future__ import annotations

import pytest
from django.contrib import admin

from billing.tests.harness import checkout_and_pay

pytestmark = pytest.mark.django_db


def djstripe_admins():
    return {
        model: model_admin
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == "djstripe"
    }


def test_every_djstripe_admin_is_read_only(rf, staff, support_agent):
    found = djstripe_admins()
    assert len(found) >= 40
    for user in (staff, support_agent):
        request = rf.get("/admin/")
        request.user = user
        for model, model_admin in found.items():
            assert not model_admin.has_add_permission(request), model
            assert not model_admin.has_change_permission(request), model
            assert not model_admin.has_delete_permission(request), model
            actions = model_admin.get_actions(request)
            assert not {"_resync_instances", "_sync_all_instances", "delete_selected"} & set(
                actions
            ), model


def test_superusers_can_look_but_not_add_change_or_delete(
    admin_client, owner, owner_client, stripe_harness
):
    checkout_and_pay(
        owner_client, stripe_harness, {"tier": "pro", "interval": "month"}, card="5555555555554444"
    )
    checkout_and_pay(owner_client, stripe_harness, {"bundle": "credits_250"})
    owner_client.post(
        "/billing/details/",
        {"email": "owner@example.com", "tax_id_type": "eu_vat", "tax_id_value": "DE123456789"},
    )
    stripe_harness.deliver()
    opened = 0
    for model in djstripe_admins():
        name = model._meta.model_name
        base = f"/admin/djstripe/{name}/"
        listing = admin_client.get(base)
        assert listing.status_code == 200, name
        assert f'href="{base}add/"' not in listing.content.decode(), name
        assert admin_client.get(f"{base}add/").status_code == 403, name
        obj = model.objects.first()
        if obj is None:
            continue
        page = admin_client.get(f"{base}{obj.pk}/change/")
        assert page.status_code == 200, name
        html = page.content.decode()
        assert 'name="_save"' not in html and "deletelink" not in html, name
        assert admin_client.post(f"{base}{obj.pk}/delete/", {"post": "yes"}).status_code == 403
        assert model.objects.filter(pk=obj.pk).exists()
        opened += 1
    # Customers, subscriptions, invoices, prices, products, payment methods, events, ...
    assert opened >= 10


def test_djstripes_sync_everything_page_is_gone():
    from django.urls import NoReverseMatch, reverse

    with pytest.raises(NoReverseMatch):
        reverse(
            "admin:djstripe_custom_action",
            kwargs={"action_name": "_sync_all_instances", "model_name": "customer"},
        )


def test_the_webhook_replay_action_stays(rf, staff):
    from djstripe.models import WebhookEventTrigger

    request = rf.get("/admin/")
    request.user = staff
    assert "replay" in admin.site._registry[WebhookEventTrigger].get_actions(request)


def test_the_index_lists_our_apps_first_and_folds_djstripe(admin_client):
    html = admin_client.get("/admin/").content.decode()
    mirror = html.index('<details class="module stripe-mirror" id="stripe-mirror">')
    for ours in ("/admin/auth/user/", "/admin/subscriptions/creditaccount/",
                 "/admin/activities/ledgerentry/"):  # fmt: skip
        assert html.index(f'href="{ours}"') < mirror
    assert html.index('href="/admin/djstripe/customer/"') > mirror
    assert 'href="/admin/djstripe/customer/add/"' not in html


def test_a_page_builds_the_app_list_once(admin_client, monkeypatch):
    """Each build checks every registered model's permissions (dj-stripe's mirror is most of
    them); the index page used to build it three times."""
    from django.contrib.admin import AdminSite

    builds = []
    django_build = AdminSite.get_app_list

    def counted(self, request, app_label=None):
        builds.append(app_label)
        return django_build(self, request, app_label)

    monkeypatch.setattr(AdminSite, "get_app_list", counted)
    for path in ("/admin/", "/admin/subscriptions/creditaccount/", "/admin/djstripe/"):
        builds.clear()
        assert admin_client.get(path).status_code == 200
        assert len(builds) == len(set(builds)), (path, builds)
