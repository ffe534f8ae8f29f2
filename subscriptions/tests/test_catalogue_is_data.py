"""The catalogue is the only list of tiers, and the activity types are code: adding either
changes the catalogue or the enum and nothing in the schema (docs/recipes.md)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from io import StringIO
from types import MappingProxyType

import pytest
from django.core.management import call_command
from django.db import models

from activities import models as activity_models
from subscriptions import catalogue
from subscriptions.models import CreditAccount
from subscriptions.tests.factories import UserFactory


def _with_desk_tier() -> MappingProxyType[str, catalogue.Tier]:
    pro = catalogue.TIERS["pro"]
    desk = replace(
        pro, key="desk", name="Desk", monthly_credits=1000, unlock_duration=timedelta(hours=3)
    )
    order = [*catalogue.TIERS.values()]
    at = [*catalogue.TIERS].index("elite")
    return catalogue.ranked_tiers(*order[:at], desk, *order[at:])


def _makemigrations_check() -> str:
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # exits 1 on changes
    return out.getvalue()


@pytest.mark.django_db
def test_a_new_tier_needs_no_migration_and_is_a_valid_choice(monkeypatch):
    monkeypatch.setattr(catalogue, "TIERS", _with_desk_tier())
    assert "No changes detected" in _makemigrations_check()
    account = CreditAccount.objects.get(user=UserFactory.create())
    account.tier = "desk"
    account.full_clean()  # the choices are read from the catalogue when validated
    assert catalogue.TIERS["desk"].rank == catalogue.TIERS["elite"].rank - 1
    account.tier = "platinum"
    with pytest.raises(Exception, match="platinum"):
        account.full_clean()


@pytest.mark.django_db
def test_a_new_activity_type_needs_no_migration(monkeypatch):
    # django-stubs types only the one-name call of the enum's functional API.
    extended = models.TextChoices(  # type: ignore[call-overload]
        "ActivityType",
        [
            *((m.name, (m.value, m.label)) for m in activity_models.ActivityType),
            ("REFUND_ISSUED", ("refund_issued", "Refund issued")),
        ],
    )
    monkeypatch.setattr(activity_models, "ActivityType", extended)
    assert ("refund_issued", "Refund issued") in activity_models.activity_type_choices()
    assert "No changes detected" in _makemigrations_check()
