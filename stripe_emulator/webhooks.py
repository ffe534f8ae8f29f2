"""Webhook delivery: Stripe's signature scheme, sync or background delivery, chaos, records."""

from __future__ import annotations

import hashlib
import heapq
import hmac
import ipaddress
import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .core import Emulator

# A delivery target may be a Python callable: (body: bytes, headers: dict[str, Any]) -> HTTP status.
Target = Callable[[bytes, dict[str, str]], int]
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def sign(payload: str, secret: str, timestamp: int) -> str:
    """``Stripe-Signature`` header value: HMAC-SHA256 of "t.payload", keyed by the whsec string."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and is_loopback_host(parts.hostname)


def matches(enabled_events: list[str], event_type: str) -> bool:
    return "*" in enabled_events or event_type in enabled_events


# Stripe retries a failed delivery for up to three days in live mode, with exponential
# backoff: here 1, 2, 4, ... 2048 minutes after each failure (12 retries, 2.8 days in all),
# on the emulator's clock, so advancing the clock brings the retries due.
RETRY_SCHEDULE = tuple(60 * 2**i for i in range(12))
# Chaos mode: the share of deliveries sent twice, and held back (late) by up to LATE_MAX.
CHAOS_DUPLICATE, CHAOS_LATE, LATE_MAX = 0.3, 0.2, 3 * 86400
FAR = 10.0  # seconds: ``flush`` does not wait for deliveries due later than this


class Dispatcher:
    """Delivers events to endpoints, synchronously or from worker threads, with retries.

    Every (event, endpoint) pair is queued with the emulator time it falls due. ``sync`` mode
    delivers what is due on the calling thread when an API call (or a clock advance) ends;
    ``background`` mode runs ``workers`` threads, so two events of one customer can be in
    flight at once, as with Stripe. A failure is retried on Stripe's schedule (or after the
    wall-clock ``retry_delays`` given, for quick demos). Chaos mode duplicates deliveries,
    holds some back for up to three days of emulator time, and delivers whatever is due in a
    random order: last month's event may land after this month's renewal.
    """

    def __init__(
        self,
        emulator: Emulator,
        mode: str = "sync",
        *,
        retry_delays: tuple[float, ...] | None = None,
        timeout: float = 10.0,
        workers: int = 4,
    ) -> None:
        if mode not in ("sync", "background"):
            raise ValueError("delivery must be 'sync' or 'background'")
        self.emulator = emulator
        self.mode = mode
        self.retry_delays = tuple(retry_delays) if retry_delays is not None else RETRY_SCHEDULE
        self.timeout = timeout
        self.workers = max(1, workers)
        self.callables: dict[str, Target] = {}
        self.chaos = False
        self.chaos_rng = random.Random(0)
        # (due emulator time, seq, event, endpoint, attempt)
        self._heap: list[tuple[float, int, dict[str, Any], dict[str, Any], int]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._local = threading.local()

    # --- configuration -------------------------------------------------------------------
    def set_chaos(self, enabled: bool, seed: int | None = None) -> None:
        self.chaos = enabled
        if seed is not None:
            self.chaos_rng.seed(seed)

    def _now(self) -> float:
        return float(self.emulator.now())

    # --- dispatch ------------------------------------------------------------------------
    def dispatch(self, batch: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Queue (event, endpoint) pairs (endpoint is {"id", "url", "secret"}) and deliver what
        is due: now in sync mode, by the workers in background mode."""
        now = self._now()
        with self._cond:
            for event, endpoint in batch:
                copies = 1
                if self.chaos and self.chaos_rng.random() < CHAOS_DUPLICATE:
                    copies = 2
                for _ in range(copies):
                    due = now
                    if self.chaos and self.chaos_rng.random() < CHAOS_LATE:
                        due += self.chaos_rng.randint(60, LATE_MAX)
                    heapq.heappush(self._heap, (due, next(self._seq), event, endpoint, 1))
            self._cond.notify_all()
        if self.mode == "sync":
            self.drain()
        elif self._heap:
            self._start()

    def wake(self) -> None:
        """The clock moved: deliver what fell due."""
        if self.mode == "sync":
            self.drain()
        else:
            with self._cond:
                self._cond.notify_all()

    def next_due(self) -> float | None:
        """When the next queued delivery (held back, or a retry) is due; None if none is."""
        with self._cond:
            return min((item[0] for item in self._heap), default=None)

    def _pop_due(self, now: float) -> tuple[float, dict[str, Any], dict[str, Any], int] | None:
        """Take one due delivery (the oldest; a random one in chaos mode). Hold the lock."""
        due = [item for item in self._heap if item[0] <= now]
        if not due:
            return None
        item = self.chaos_rng.choice(due) if self.chaos else min(due, key=lambda i: i[:2])
        self._heap.remove(item)
        heapq.heapify(self._heap)
        return item[0], item[2], item[3], item[4]

    def _deliver(
        self, at: float, event: dict[str, Any], endpoint: dict[str, Any], attempt: int
    ) -> bool:
        """Attempt a delivery due at emulator time ``at``; a failure is retried relative to
        ``at``, so a clock that jumped days ahead replays the schedule as Stripe would have."""
        status = self.attempt(event, endpoint, attempt, at=at)
        failed = status is None or not 200 <= status < 300
        if failed and attempt <= len(self.retry_delays):
            due = at + self.retry_delays[attempt - 1]
            with self._cond:
                heapq.heappush(self._heap, (due, next(self._seq), event, endpoint, attempt + 1))
                self._cond.notify_all()
        return not failed

    def drain(self, *, everything: bool = False) -> int:
        """Deliver on this thread what is due (``everything``: also what is due later, each
        once at its time; retries of what still fails come later, as usual).

        Re-entrant calls (a receiver calling the API back) return at once: the outer loop
        picks up what they queued.
        """
        if getattr(self._local, "draining", False):
            return 0
        self._local.draining = True
        done = 0
        horizon = None
        if everything:
            with self._cond:
                horizon = max((i[0] for i in self._heap), default=0.0)
        try:
            while True:
                with self._cond:
                    item = self._pop_due(max(self._now(), horizon or 0.0))
                    if item is None:
                        return done
                    self._in_flight += 1
                try:
                    at, event, endpoint, attempt = item
                    self._deliver(at, event, endpoint, attempt)
                    done += 1
                finally:
                    with self._cond:
                        self._in_flight -= 1
                        self._cond.notify_all()
        finally:
            self._local.draining = False

    def attempt(
        self,
        event: dict[str, Any],
        endpoint: dict[str, Any],
        attempt: int,
        *,
        at: float | None = None,
    ) -> int | None:
        """One delivery attempt; records it and returns the HTTP status (None: no response)."""
        body = json.dumps(event, separators=(",", ":"))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": sign(body, endpoint["secret"], int(time.time())),
            "Accept": "*/*; q=0.5, application/xml",
            "Cache-Control": "no-cache",
        }
        status: int | None = None
        error: str | None = None
        target = self.callables.get(endpoint["id"])
        try:
            if target is not None:
                status = int(target(body.encode("utf-8"), headers))
            elif not is_loopback_url(endpoint["url"]):
                error = "refused: only loopback webhook URLs are allowed"
            else:
                req = urllib.request.Request(
                    endpoint["url"], data=body.encode("utf-8"), headers=headers, method="POST"
                )
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                    status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except Exception as exc:  # noqa: BLE001 - a receiver's failure is data, not a crash
            error = f"{type(exc).__name__}: {exc}"
        self.emulator._record_delivery(
            {
                "event": event["id"],
                "type": event["type"],
                "endpoint": endpoint["id"],
                "url": endpoint["url"],
                "attempt": attempt,
                "status": status,
                "ok": status is not None and 200 <= status < 300,
                "error": error,
                "time": time.time(),
                "emulator_time": int(at if at is not None else self.emulator.now()),
            }
        )
        return status

    # --- background workers --------------------------------------------------------------
    def _start(self) -> None:
        with self._cond:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._stopping = False
            while len(self._threads) < self.workers:
                thread = threading.Thread(
                    target=self._run,
                    name=f"stripe-emulator-webhooks-{len(self._threads) + 1}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                item = None
                while not self._stopping:
                    item = self._pop_due(self._now())
                    if item is not None:
                        break
                    wait = 0.5
                    if self._heap:
                        wait = min(wait, max(0.01, min(self._heap)[0] - self._now()))
                    self._cond.wait(wait)
                if self._stopping:
                    return
                self._in_flight += 1
            try:
                self._deliver(*item)  # type: ignore[misc]  # item is set: the loop broke on it
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until nothing due soon is queued or in flight. True if drained.

        Deliveries due later on the emulator clock (a retry an hour away, a late chaos
        delivery) stay queued: advance the clock, or ``drain(everything=True)`` in sync mode.
        """
        if self.mode == "sync":
            self.drain()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._in_flight or any(i[0] <= self._now() + FAR for i in self._heap):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def release(self) -> int:
        """Make every queued delivery (late ones, retries) due now; returns how many."""
        now = self._now()
        with self._cond:
            self._heap = [(min(i[0], now), *i[1:]) for i in self._heap]
            heapq.heapify(self._heap)
            self._cond.notify_all()
            return len(self._heap)

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._in_flight

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
