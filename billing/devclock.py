"""``make run`` with the offline Stripe: the app's clock follows the emulator's.

Advancing the emulator's clock (``POST /_emulator/clock/advance``) runs Stripe's renewals,
retries and expiries; with this on, the app sees the same time, so its own rules that follow
Stripe (grace periods, monthly resets of yearly plans, free-tier renewals) fall due together
and one clock is enough to try a whole life. ``django.utils.timezone.now`` is wrapped to add
the emulator's ``clock_offset`` (read from its admin API, at most once a second). Wall time
itself (``time.time``) is left alone: webhook signatures and tokens stay on real time.

Only with ``STRIPE_FOLLOW_EMULATOR_CLOCK``, DEBUG on, test mode and ``STRIPE_API_HOST`` on
loopback (system check billing.E005): never with real Stripe.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)
REFRESH_SECONDS = 1.0


class EmulatorClock:
    """``timezone.now`` plus the emulator's clock offset (cached for a second)."""

    def __init__(self, api_host: str, real_now: Callable[[], datetime]) -> None:
        self.status_url = api_host.rstrip("/") + "/_emulator"
        self.real_now = real_now
        self.offset = 0
        self.read_at = float("-inf")
        self.lock = threading.Lock()

    def refresh(self) -> int:
        with self.lock:
            if time.monotonic() - self.read_at < REFRESH_SECONDS:
                return self.offset
            self.read_at = time.monotonic()
        try:
            with urllib.request.urlopen(self.status_url, timeout=0.5) as resp:
                self.offset = int(json.load(resp)["clock_offset"])
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("the emulator's clock is unreadable (%s); keeping %ss", exc, self.offset)
        return self.offset

    def __call__(self) -> datetime:
        return self.real_now() + timedelta(seconds=self.refresh())


def allowed() -> bool:
    host = urlsplit(getattr(settings, "STRIPE_API_HOST", "") or "").hostname
    return (
        settings.DEBUG
        and not settings.STRIPE_LIVE_MODE
        and host in {"127.0.0.1", "localhost", "::1"}
    )


def install() -> EmulatorClock | None:
    """Make ``timezone.now`` follow the emulator's clock (when allowed); returns the clock."""
    if not allowed():
        return None
    current = timezone.now
    real_now = getattr(current, "real_now", current)
    clock = EmulatorClock(settings.STRIPE_API_HOST, real_now)
    timezone.now = clock
    return clock


def active() -> EmulatorClock | None:
    """The installed clock, if the app follows the emulator's."""
    clock = timezone.now
    return clock if isinstance(clock, EmulatorClock) else None


def page_url(return_to: str) -> str:
    """The offline Stripe's clock page (advance a day, a week, a month), linking back."""
    return f"{settings.STRIPE_API_HOST.rstrip('/')}/_emulator/clock?" + urlencode(
        {"return_to": return_to}
    )


def uninstall() -> None:
    clock = timezone.now
    if isinstance(clock, EmulatorClock):
        timezone.now = clock.real_now
