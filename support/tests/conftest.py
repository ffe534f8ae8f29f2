from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from pages.tests.conftest import logged_in
from subscriptions.tests.factories import UserFactory


@pytest.fixture
def support_agent(db):
    """A staff member in the "support" group only (not a superuser)."""
    user = UserFactory(email="agent@example.com", is_staff=True)
    user.groups.add(Group.objects.get(name="support"))
    return user


@pytest.fixture
def agent_client(support_agent):
    return logged_in(support_agent)


@pytest.fixture
def admin_client(staff):
    return logged_in(staff)


@pytest.fixture
def owner_client(owner):
    return logged_in(owner)
