"""Fixtures for the subscriptions tests."""

from __future__ import annotations

import pytest
import time_machine

from subscriptions.tests.helpers import T0


@pytest.fixture
def at_t0():
    """For rules about time: the clock starts at T0 unless a test moves it (a module opts in
    with ``pytestmark = pytest.mark.usefixtures("at_t0")``)."""
    with time_machine.travel(T0, tick=False):
        yield
