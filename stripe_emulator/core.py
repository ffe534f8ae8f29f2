"""The core ``Emulator``: one request handler shared by the HTTP server and the in-process client.

State lives in a ``Store`` guarded by one re-entrant lock. Handlers run under the lock and queue
events; the queue is delivered after the lock is released (so a webhook receiver may call back
into the emulator), before the request returns in ``sync`` delivery mode.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import objects
from .errors import StripeError, not_found
from .listing import expand
from .objects import API_VERSION
from .params import check, decode
from .state import Store, kind_of
from .webhooks import Dispatcher, Target, is_loopback_url, matches

if TYPE_CHECKING:
    from .server import EmulatorServer

Handler = Callable[..., Any]
# Work that falls due later on a clock (a refund that fails, a bank debit that settles):
# kind -> fn(emu, object_id, **args), registered by the modules with ``@task(kind)``.
TASKS: dict[str, Handler] = {}
DEFAULT_BASE_URL = "http://127.0.0.1:12111"
# The business the emulated account belongs to (the dashboard's public business name): shown on
# the hosted pages, as ``account.settings.dashboard.display_name`` and ``invoice.account_name``.
DEFAULT_ACCOUNT_NAME = "Example Business"
ACCOUNT_NAME_ENV = "STRIPE_EMULATOR_ACCOUNT_NAME"
IDEMPOTENCY_TTL = 24 * 3600  # seconds Stripe keeps an idempotency key

# How a missing object is named in "No such <name>: 'id'"
HUMAN_NAMES = {
    "checkout.session": "checkout.session",
    "test_helpers.test_clock": "test_clock",
    "billing_portal.session": "billing_portal.session",
    "billing_portal.configuration": "billing_portal.configuration",
    "subscription_schedule": "subscription_schedule",
}


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]
    request_id: str
    idempotency_key: str | None = None
    raw_body: str = ""

    def parse(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Check the parameters against ``spec`` (``expand`` is always allowed)."""
        checked: dict[str, Any] = check(self.params, {**spec, "expand": "strs"})
        return checked


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    @classmethod
    def of_json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        # Stripe indents its JSON; nothing reads the whitespace, and only an unindented dump
        # gets the json module's C encoder (42 against 195 us for an invoice and its lines).
        body = json.dumps(data).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def html(cls, status: int, text: str) -> Response:
        return cls(status, text.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(303, b"", {"Location": location, "Content-Type": "text/plain"})


class Routes:
    """A small router: ``@routes("GET", r"/v1/customers/(?P<cid>[^/]+)")``."""

    def __init__(self) -> None:
        self.table: list[tuple[str, re.Pattern[str], Handler]] = []

    def __call__(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.table.append((method, re.compile(f"^{pattern}$"), fn))
            return fn

        return register


def task(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        TASKS[kind] = fn
        return fn

    return register


class Emulator:
    """A stateful, offline Stripe API (test mode) with webhooks, test clocks and hosted pages.

    ``clock`` is a callable returning Unix time (default ``time.time``); ``delivery`` is ``"sync"``
    (events are delivered before the API call returns) or ``"background"`` (a thread with
    retries); ``state_path`` enables JSON snapshots written after every mutation. ``account_name``
    is the business the account belongs to (default: ``$STRIPE_EMULATOR_ACCOUNT_NAME``, else
    ``DEFAULT_ACCOUNT_NAME``).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        delivery: str = "sync",
        state_path: str | None = None,
        seed: int | None = 0,
        base_url: str = DEFAULT_BASE_URL,
        retry_delays: tuple[float, ...] | None = None,
        final_failed_renewal: str | None = None,
        dunning: dict[str, Any] | None = None,
        workers: int = 4,
        account_name: str | None = None,
    ) -> None:
        from . import (  # route modules
            admin,
            api,
            billing,
            checkout,
            discounts,
            disputes,
            invoicing,
            pages,
            payments,
            portal,
            previews,
            sca,
            schedules,
            tax_ids,
        )

        self.lock = threading.RLock()
        self.store = Store(seed)
        self._clock = clock or time.time
        self.base_url = base_url.rstrip("/")
        self.account_name = (
            account_name or os.environ.get(ACCOUNT_NAME_ENV) or DEFAULT_ACCOUNT_NAME
        ).strip()
        self.state_path = state_path
        self.dispatcher = Dispatcher(self, delivery, retry_delays=retry_delays, workers=workers)
        self._local = threading.local()
        # Idempotency keys whose first request is still running (a second use answers 409).
        self._idempotency_lock = threading.Lock()
        self._in_progress: set[str] = set()
        self._outbox: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._dirty = False
        # Cleared while "paused": API requests hang as when Stripe does not answer.
        self._answering = threading.Event()
        self._answering.set()
        self._resume_timer: threading.Timer | None = None
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        modules = (api, checkout, billing, disputes, discounts, invoicing, sca, admin, pages)
        modules += (portal, schedules, payments, tax_ids, previews)  # type: ignore[assignment]
        for module in modules:
            self.routes.extend(module.routes.table)
        if state_path:
            self.store.load(state_path)
        if dunning or final_failed_renewal:
            settings = {**(dunning or {})}
            if final_failed_renewal:
                settings["subscription"] = final_failed_renewal
            self.set_dunning(**settings)

    @property
    def display_name(self) -> str:
        """The account's name as Stripe shows it (marked as the emulator's)."""
        return f"{self.account_name} (Stripe emulator)"

    @property
    def statement_descriptor(self) -> str:
        """Stripe's rule: 5-22 characters, none of ``<>\\'"*``; the dashboard's default is the
        business name in capitals."""
        kept = "".join(ch for ch in self.account_name.upper() if ch not in "<>\\'\"*")
        return kept[:22].strip().ljust(5, ".")

    @property
    def dunning(self) -> dict[str, Any]:
        from .billing import DEFAULT_DUNNING

        return {**DEFAULT_DUNNING, **self.store.dunning}

    def set_dunning(
        self,
        *,
        retry_days: list[float] | None = None,
        subscription: str | None = None,
        invoice: str | None = None,
    ) -> dict[str, Any]:
        """Revenue recovery settings: retry days, then cancel|unpaid|past_due, and the invoice
        open|uncollectible|void."""
        from .billing import DUNNING_CHOICES

        changes: dict[str, Any] = {}
        if retry_days is not None:
            days = [float(d) for d in retry_days]
            if len(days) > 8 or any(d <= 0 for d in days):
                raise ValueError("retry_days: up to 8 positive day counts")
            changes["retry_days"] = days
        for name, value in (("subscription", subscription), ("invoice", invoice)):
            if value is not None:
                if value not in DUNNING_CHOICES[name]:
                    raise ValueError(f"{name} must be one of {DUNNING_CHOICES[name]}")
                changes[name] = value
        with self.lock:
            self.store.dunning.update(changes)
            self._dirty = True
        self._persist()
        return self.dunning

    # --- time ----------------------------------------------------------------------------
    def now(self) -> int:
        """Emulator time: wall clock (or the injected clock) plus the global offset."""
        override = getattr(self._local, "now", None)  # set while running due work in order
        if override is not None:
            return int(override)
        return int(self._clock()) + self.store.clock_offset

    def now_for(self, obj_or_customer: dict[str, Any] | str | None) -> int:
        """Time as seen by an object: its test clock's frozen time, else ``now()``."""
        clock_id = self.clock_of(obj_or_customer)
        if clock_id:
            clock = self.store.get(clock_id)
            if clock:
                return int(clock["frozen_time"])
        return self.now()

    def clock_of(self, obj_or_customer: dict[str, Any] | str | None) -> str | None:
        if obj_or_customer is None:
            return None
        obj = obj_or_customer
        if isinstance(obj, str):
            obj = self.store.get(obj) or {}
        if obj.get("object") != "customer" and isinstance(obj.get("customer"), str):
            obj = self.store.get(obj["customer"]) or {}
        return obj.get("test_clock")

    def schedule(
        self, kind: str, object_id: str, at: int, *, owner: Any = None, **args: Any
    ) -> None:
        """Run task ``kind`` on ``object_id`` when its clock (``owner``'s) reaches ``at``."""
        clock = self.clock_of(owner if owner is not None else object_id)
        self.store.scheduled.append(
            {"at": int(at), "clock": clock, "kind": kind, "id": object_id, "args": args}
        )

    # --- objects -------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        return self.store.new_id(prefix)

    def get(self, kind: str, object_id: str, param: str = "id") -> dict[str, Any]:
        obj = self.store.get(object_id, kind)
        if obj is None:
            raise not_found(HUMAN_NAMES.get(kind, kind), object_id, param)
        return obj

    def lookup(self, object_id: str) -> dict[str, Any] | None:
        """A rendered copy of any object by id (used by ``expand[]``)."""
        if kind_of(object_id) == "subscription_item":
            found = self.subscription_item(object_id)
            return objects.json_copy(found) if found else None
        obj = self.store.get(object_id)
        return self.render(obj) if obj else None

    def subscription_item(self, item_id: str) -> dict[str, Any] | None:
        sub_id = self.store.notes.get(item_id, {}).get("subscription")
        sub = self.store.get(sub_id) if sub_id else None
        for item in (sub or {}).get("items", {}).get("data", []):
            if item["id"] == item_id:
                return item  # type: ignore[no-any-return]
        return None

    def render(self, obj: dict[str, Any]) -> dict[str, Any]:
        return objects.json_copy(obj)

    def include(self, obj: dict[str, Any], fieldname: str) -> Any:
        """Fields Stripe only returns when expanded."""
        kind = obj.get("object")
        if kind == "customer" and fieldname == "sources":
            return objects.list_object(f"/v1/customers/{obj['id']}/sources", [])
        if kind == "customer" and fieldname == "subscriptions":
            subs = [s for s in self.store.all("subscription") if s["customer"] == obj["id"]]
            return objects.list_object(
                f"/v1/customers/{obj['id']}/subscriptions",
                [copy.deepcopy(s) for s in subs if s["status"] != "canceled"],
            )
        if kind == "customer" and fieldname == "tax_ids":
            from .tax_ids import tax_ids_of

            return objects.list_object(
                f"/v1/customers/{obj['id']}/tax_ids", copy.deepcopy(tax_ids_of(self, obj["id"]))
            )
        if kind == "checkout.session" and fieldname == "line_items":
            items = copy.deepcopy(self.store.note(obj["id"]).get("line_items", []))
            return objects.list_object(f"/v1/checkout/sessions/{obj['id']}/line_items", items)
        if kind == "invoice" and fieldname == "payments":
            pays = [p for p in self.store.all("invoice_payment") if p["invoice"] == obj["id"]]
            return objects.list_object(
                f"/v1/invoice_payments?invoice={obj['id']}", copy.deepcopy(pays)
            )
        if kind == "charge" and fieldname == "refunds":
            refs = [r for r in self.store.all("refund") if r["charge"] == obj["id"]]
            return objects.list_object(f"/v1/refunds?charge={obj['id']}", copy.deepcopy(refs))
        if kind == "coupon" and fieldname == "currency_options":
            return {}
        if kind == "price" and fieldname in ("currency_options", "tiers"):
            return {} if fieldname == "currency_options" else []
        if kind in ("item", "line_item") and fieldname in ("discounts", "taxes"):
            return []
        return None

    def expand(self, data: Any, paths: list[str]) -> Any:
        return expand(data, paths, self.lookup, self.include)

    @contextmanager
    def dry_run(self) -> Iterator[None]:
        """Run the block (under the lock) as if it happened, then forget it: the state, the ids
        and the events it queued are as before (Stripe's previews change nothing)."""
        with self.lock:
            queued = len(self._outbox)
            try:
                with self.store.sandbox():
                    yield
            finally:
                del self._outbox[queued:]

    # --- events --------------------------------------------------------------------------
    def emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
        *,
        at: int | None = None,
    ) -> dict[str, Any]:
        """Record an event with a snapshot of ``obj`` and queue it for delivery."""
        req = getattr(self._local, "request", None)
        request = {
            "id": req.request_id if req else None,
            "idempotency_key": req.idempotency_key if req else None,
        }
        endpoints = [
            e
            for e in self.store.all("webhook_endpoint")
            if e["status"] == "enabled" and matches(e["enabled_events"], event_type)
        ]
        event = objects.event(
            self.new_id("evt_"),
            at if at is not None else self.now_for(obj),
            type=event_type,
            obj=self.render(obj),
            previous=previous,
            request=request,
            pending_webhooks=len(endpoints),
        )
        self.store.add(event)
        for endpoint in endpoints:
            info = {
                "id": endpoint["id"],
                "url": endpoint["url"],
                "secret": self.store.note(endpoint["id"])["secret"],
            }
            self._outbox.append((objects.json_copy(event), info))
        return event

    def _record_delivery(self, record: dict[str, Any]) -> None:
        with self.lock:
            record["id"] = f"del_{len(self.store.deliveries) + 1}"
            self.store.deliveries.append(record)
            if record["ok"]:
                event = self.store.get(record["event"])
                if event and event["pending_webhooks"] > 0:
                    event["pending_webhooks"] -= 1
            self._dirty = True
        if getattr(self._local, "depth", 0) == 0:
            self._persist()

    # --- transactions --------------------------------------------------------------------
    @contextmanager
    def transaction(self, request: Request | None = None) -> Iterator[None]:
        """Hold the state lock; on the outermost exit persist and deliver queued events."""
        batch: list[tuple[dict[str, Any], dict[str, Any]]] = []
        depth = -1
        try:
            with self.lock:
                depth = getattr(self._local, "depth", 0)
                self._local.depth = depth + 1
                if request is not None and depth == 0:
                    self._local.request = request
                try:
                    yield
                finally:
                    # A request that fails part-way (a declined card) keeps what it did and
                    # sends its events (payment_intent.payment_failed), as Stripe does.
                    self._dirty = True
                    self._local.depth = depth
                    if depth == 0:
                        self._local.request = None
                        batch, self._outbox = self._outbox, []
                        self._persist()
        finally:
            if depth == 0:  # also delivers what the clock made due
                self.dispatcher.dispatch(batch)

    def _persist(self) -> None:
        if self.state_path and self._dirty:
            with self.lock:
                self.store.save(self.state_path)
                self._dirty = False

    # --- the request handler -------------------------------------------------------------
    def handle(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Response:
        """Handle one HTTP request (method, path?query, headers, body) and return a Response."""
        method = method.upper()
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        text = body.decode("utf-8") if isinstance(body, bytes) else (body or "")
        request_id = "req_" + uuid.uuid4().hex[:14]
        base = {"Request-Id": request_id}
        try:
            form = {}
            if "json" not in headers.get("content-type", ""):
                form = decode(text)
            params = {**decode(parts.query), **form}
        except ValueError:
            params = {}
        req = Request(
            method, path, params, headers, request_id, headers.get("idempotency-key"), text
        )
        if path.startswith("/v1/"):
            # A paused emulator holds API calls unanswered (the client's timeout decides);
            # once resumed they are processed, as Stripe may process a call whose answer was
            # lost. The admin API and the hosted pages keep answering.
            self._answering.wait()
            base["Stripe-Version"] = headers.get("stripe-version", API_VERSION)
            return self._api(req, base)
        try:
            handler, groups = self._route(method, path)
            result = handler(self, req, **groups)
        except StripeError as err:
            return Response.of_json(err.status, err.body(request_id), base)
        if isinstance(result, Response):
            result.headers.update(base)
            return result
        return Response.of_json(200, result, base)

    def _route(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        allowed = False
        for m, pattern, handler in self.routes:
            match = pattern.match(path)
            if match:
                if m == method:
                    return handler, match.groupdict()
                allowed = True
        if allowed:
            raise StripeError(405, f"Method {method} is not allowed for {path}")
        raise StripeError(
            404,
            f"Unrecognized request URL ({method}: {path}).",
            code=None,
            type="invalid_request_error",
        )

    def _api(self, req: Request, base: dict[str, str]) -> Response:
        try:
            self._authenticate(req)
        except StripeError as err:
            return Response.of_json(err.status, err.body(req.request_id), base)
        key = req.idempotency_key if req.method in ("POST", "DELETE") else None
        fingerprint = [req.method, req.path, json.dumps(req.params, sort_keys=True)]
        if key:
            with self._idempotency_lock:
                seen = self.store.idempotency.get(key)
                if seen is not None and seen.get("at", time.time()) < time.time() - IDEMPOTENCY_TTL:
                    seen = None  # Stripe prunes keys after 24 hours
                if seen is None:
                    if key in self._in_progress:
                        busy = StripeError(
                            409,
                            "There is currently another in-progress request using this "
                            f"Idempotent Key (that probably means you submitted twice, and the "
                            f"other request is still going through): {key}. Please try again "
                            "later.",
                            code="idempotency_key_in_use",
                        )
                        return Response.of_json(409, busy.body(req.request_id), base)
                    self._in_progress.add(key)
            if seen is not None:
                if seen["fingerprint"] != fingerprint:
                    reused = StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request.",
                        type="idempotency_error",
                    )
                    return Response.of_json(400, reused.body(req.request_id), base)
                headers = {**base, "Idempotent-Replayed": "true", "Idempotency-Key": key}
                return Response(
                    seen["status"], seen["body"].encode(), {**seen["headers"], **headers}
                )
        try:
            handler, groups = self._route(req.method, req.path)
            if req.method == "GET":
                with self.lock:
                    result = handler(self, req, **groups)
                    result = self._finish(req, result)
            else:
                with self.transaction(req):
                    result = handler(self, req, **groups)
                    result = self._finish(req, result)
            resp = Response.of_json(200, result, base)
            executed = True
        except StripeError as err:
            resp = Response.of_json(err.status, err.body(req.request_id), base)
            # Stripe saves no result for a request whose parameters failed validation.
            executed = not (err.code or "").startswith("parameter_")
        finally:
            if key:
                with self._idempotency_lock:
                    self._in_progress.discard(key)
        if key and executed and resp.status not in (401, 429) and resp.status < 500:
            resp.headers["Idempotency-Key"] = key
            with self.lock:
                self.store.idempotency[key] = {
                    "fingerprint": fingerprint,
                    "status": resp.status,
                    "body": resp.body.decode(),
                    "headers": {"Content-Type": "application/json"},
                    "at": time.time(),
                }
                self._dirty = True
            self._persist()
        return resp

    def _finish(self, req: Request, result: dict[str, Any]) -> dict[str, Any]:
        result = objects.json_copy(result)
        paths = req.params.get("expand") or []
        if isinstance(paths, str):
            paths = [paths]
        expanded: dict[str, Any] = self.expand(result, list(paths))
        return expanded

    def _authenticate(self, req: Request) -> None:
        auth = req.headers.get("authorization", "")
        if not auth:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth "
                "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key.startswith("sk_test_") or len(key) < 9:
            shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if key else auth
            message = f"Invalid API Key provided: {shown}"
            if key.startswith("sk_live_"):
                message += " (the Stripe emulator only accepts test-mode keys: sk_test_...)"
            raise StripeError(401, message)

    # --- public Python API ---------------------------------------------------------------
    def reset(self) -> None:
        """Forget every object, event, delivery and setting (and the snapshot)."""
        with self.lock:
            self.store.reset()
            self.dispatcher.clear()
            self._outbox = []
            self._dirty = True
        self._persist()

    def add_webhook_endpoint(
        self,
        target: str | Target,
        secret: str | None = None,
        events: list[str] | None = None,
        api_version: str | None = None,
    ) -> dict[str, Any]:
        """Register a delivery target: a loopback URL or a callable(body, headers) -> status."""
        with self.transaction():
            return self._create_endpoint(target, secret, events or ["*"], api_version)

    def _create_endpoint(
        self, target: str | Target, secret: str | None, events: list[str], api_version: str | None
    ) -> dict[str, Any]:
        wid = self.new_id("we_")
        if callable(target):
            url = f"callable://{getattr(target, '__name__', 'target')}"
            self.dispatcher.callables[wid] = target
        else:
            url = target
            if not is_loopback_url(url):
                raise StripeError(
                    400,
                    f"Invalid URL: {url}. The Stripe emulator only delivers to loopback "
                    "addresses (127.0.0.1, ::1, localhost).",
                    code="url_invalid",
                    param="url",
                )
        endpoint = objects.webhook_endpoint(
            wid, self.now(), url=url, events=list(events), api_version=api_version
        )
        self.store.add(endpoint)
        self.store.note(wid)["secret"] = secret or "whsec_" + uuid.uuid4().hex
        shown: dict[str, Any] = copy.deepcopy(endpoint)
        shown["secret"] = self.store.note(wid)["secret"]
        return shown

    def complete_checkout(
        self, session_id: str, card: str = "4242424242424242", **details: Any
    ) -> dict[str, Any]:
        """Pay an open Checkout Session as a customer would (raises StripeError on decline).

        ``bank_account="000123456789"`` pays by ACH Direct Debit instead: the session completes
        unpaid and the payment settles (or fails) later on the clock.
        """
        from .checkout import complete

        with self.transaction():
            return copy.deepcopy(complete(self, session_id, card, **details))

    def advance_clock(self, seconds: int) -> int:
        """Move the global clock forward and run what falls due (renewals, retries, cancels)."""
        from .billing import run_due

        with self.transaction():
            self.store.clock_offset += int(seconds)
            run_due(self, None, self.now())
            return self.now()

    def run_due(self) -> None:
        """Run what has fallen due on the global clock without moving it."""
        from .billing import run_due

        with self.transaction():
            run_due(self, None, self.now())

    def set_renewal_outcome(self, customer_id: str, outcome: str = "fail") -> None:
        """Make the next renewal charge of a customer fail ("fail") or succeed ("succeed")."""
        with self.transaction():
            self.get("customer", customer_id)
            self.store.fail_next_renewal[customer_id] = outcome

    def dispute_charge(
        self, charge_id: str, reason: str = "fraudulent", *, inquiry: bool = False
    ) -> dict[str, Any]:
        """The cardholder disputes a charge (a chargeback, or an inquiry that moves no money)."""
        from .disputes import open_dispute

        with self.transaction():
            return copy.deepcopy(
                open_dispute(self, self.get("charge", charge_id), reason, inquiry=inquiry)
            )

    def resolve_dispute(self, dispute_id: str, outcome: str) -> dict[str, Any]:
        """The issuer decides: ``won`` (funds reinstated) or ``lost``."""
        from .disputes import close_dispute

        with self.transaction():
            return copy.deepcopy(close_dispute(self, self.get("dispute", dispute_id), outcome))

    def set_chaos(self, enabled: bool = True, seed: int | None = None) -> None:
        """Duplicate some deliveries and shuffle each batch (seeded) to test idempotency."""
        self.dispatcher.set_chaos(enabled, seed)

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.store.deliveries)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Emitted events, oldest first."""
        with self.lock:
            found = list(reversed(self.store.all("event")))
            return [copy.deepcopy(e) for e in found if event_type in (None, e["type"])]

    def redeliver(self, event_id: str, endpoint_id: str | None = None) -> list[int | None]:
        with self.lock:
            event = copy.deepcopy(self.get("event", event_id))
            endpoints = [
                e
                for e in self.store.all("webhook_endpoint")
                if endpoint_id in (None, e["id"])
                and (endpoint_id or matches(e["enabled_events"], event["type"]))
            ]
            infos = [
                {"id": e["id"], "url": e["url"], "secret": self.store.note(e["id"])["secret"]}
                for e in endpoints
            ]
            attempts = {
                e["id"]: sum(
                    1
                    for d in self.store.deliveries
                    if d["event"] == event_id and d["endpoint"] == e["id"]
                )
                for e in endpoints
            }
        return [self.dispatcher.attempt(event, info, attempts[info["id"]] + 1) for info in infos]

    def flush(self, timeout: float = 30.0) -> bool:
        """Deliver (sync) or wait for (background) what is due; later retries stay queued."""
        return self.dispatcher.flush(timeout)

    def next_delivery_at(self) -> float | None:
        """The emulator time of the next queued delivery (a retry, a held-back one), if any."""
        return self.dispatcher.next_due()

    def deliver_late(self) -> int:
        """Sync mode: deliver everything still queued now (late chaos deliveries, retries)."""
        return self.dispatcher.drain(everything=True)

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tick: float | None = None,
        latency: float = 0.0,
    ) -> EmulatorServer:
        """Start the loopback HTTP server in a thread; returns it (``.url``, ``.shutdown()``).

        ``tick`` (seconds) also runs due renewals/retries/expiries as wall-clock time passes;
        ``latency`` (seconds) is added to every API call, like the real API's round trip.
        """
        from .server import serve

        return serve(self, host, port, tick=tick, latency=latency)

    # --- outages ---------------------------------------------------------------------------
    def pause(self, seconds: float | None = None) -> None:
        """Stop answering API calls (they hang) until ``resume()``, or for ``seconds``."""
        self._cancel_resume_timer()
        self._answering.clear()
        if seconds is not None:
            self._resume_timer = threading.Timer(seconds, self.resume)
            self._resume_timer.daemon = True
            self._resume_timer.start()

    def resume(self) -> None:
        """Answer API calls again, the held ones first."""
        self._cancel_resume_timer()
        self._answering.set()

    @property
    def paused(self) -> bool:
        return not self._answering.is_set()

    def _cancel_resume_timer(self) -> None:
        timer, self._resume_timer = self._resume_timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()

    def close(self) -> None:
        self.resume()  # let held requests finish rather than hang their threads forever
        self.dispatcher.stop()
