"""make run's one clock: the app's timezone.now follows the offline Stripe's clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import checks
from django.utils import timezone

from billing import devclock
from stripe_emulator.testing import running_emulator


@pytest.fixture
def emulator_host(settings):
    with running_emulator() as (emulator, server):
        settings.DEBUG = True
        settings.STRIPE_LIVE_MODE = False
        settings.STRIPE_API_HOST = server.url
        yield emulator
    devclock.uninstall()


def test_the_apps_clock_follows_the_emulators_advance(emulator_host, monkeypatch):
    monkeypatch.setattr(devclock, "REFRESH_SECONDS", 0)
    before = timezone.now()
    clock = devclock.install()
    assert clock is not None and abs(timezone.now() - before) < timedelta(seconds=5)
    emulator_host.advance_clock(10 * 86400)
    assert timezone.now() - before >= timedelta(days=10)
    devclock.uninstall()
    assert timezone.now() - before < timedelta(seconds=5)


def test_an_unreachable_emulator_keeps_the_last_offset(emulator_host, monkeypatch, settings):
    monkeypatch.setattr(devclock, "REFRESH_SECONDS", 0)
    clock = devclock.install()
    assert clock is not None
    emulator_host.advance_clock(86400)
    assert clock.refresh() == 86400
    clock.status_url = "http://127.0.0.1:9/_emulator"  # nothing listens there
    assert clock.refresh() == 86400


@pytest.mark.parametrize(
    "change",
    [{"DEBUG": False}, {"STRIPE_LIVE_MODE": True}, {"STRIPE_API_HOST": "https://api.stripe.com"}],
)
def test_it_is_refused_outside_make_run_on_the_emulator(settings, change):
    settings.DEBUG = True
    settings.STRIPE_API_HOST = "http://127.0.0.1:12111"
    settings.STRIPE_FOLLOW_EMULATOR_CLOCK = True
    for name, value in change.items():
        setattr(settings, name, value)
    assert devclock.install() is None
    from billing.checks import stripe_keys_check

    assert "billing.E005" in [e.id for e in stripe_keys_check() if isinstance(e, checks.Error)]
