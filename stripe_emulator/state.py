"""In-memory state: Stripe objects by id, creation order per type, private notes, snapshots."""

from __future__ import annotations

import copy
import json
import os
import random
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ALPHABET = string.ascii_letters + string.digits

# id prefix -> the API object type stored under it (longest prefix wins)
PREFIXES: dict[str, str] = {
    "acct_": "account",
    "cus_": "customer",
    "prod_": "product",
    "price_": "price",
    "cs_test_": "checkout.session",
    "sub_": "subscription",
    "si_": "subscription_item",
    "in_": "invoice",
    "il_": "line_item",
    "ii_": "invoiceitem",
    "inpay_": "invoice_payment",
    "pi_": "payment_intent",
    "ch_": "charge",
    "txn_": "balance_transaction",
    "re_": "refund",
    "dp_": "dispute",
    "di_": "discount",
    "promo_": "promotion_code",
    "pm_": "payment_method",
    "bps_": "billing_portal.session",
    "bpc_": "billing_portal.configuration",
    "sub_sched_": "subscription_schedule",
    "evt_": "event",
    "we_": "webhook_endpoint",
    "clock_": "test_helpers.test_clock",
    "li_": "item",
}


def kind_of(object_id: str) -> str | None:
    for prefix in sorted(PREFIXES, key=len, reverse=True):
        if object_id.startswith(prefix):
            return PREFIXES[prefix]
    return None


class Store:
    """All emulator state that survives a snapshot. Callers hold the emulator's lock."""

    def __init__(self, seed: int | None = 0) -> None:
        self.rng = random.Random(seed)
        self.reset()

    def reset(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.order: dict[str, list[str]] = {}
        # private per-object notes the API never shows (card behaviour, line items, ...)
        self.notes: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, dict[str, Any]] = {}
        self.clock_offset = 0
        self.deliveries: list[dict[str, Any]] = []
        self.fail_next_renewal: dict[str, str] = {}  # customer id -> outcome
        # work that falls due later on a clock: {"at", "clock", "kind", "id", "args"}
        self.scheduled: list[dict[str, Any]] = []
        self.dunning: dict[str, Any] = {}  # revenue recovery settings over the defaults

    def new_id(self, prefix: str, length: int = 24) -> str:
        while True:
            candidate = prefix + "".join(self.rng.choice(_ALPHABET) for _ in range(length))
            if candidate not in self.objects and candidate not in self.notes:
                return candidate

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = obj["object"]
        if obj["id"] not in self.objects:
            self.order.setdefault(kind, []).append(obj["id"])
        self.objects[obj["id"]] = obj
        return obj

    def get(self, object_id: str, kind: str | None = None) -> dict[str, Any] | None:
        obj = self.objects.get(object_id)
        if obj is None or (kind and obj["object"] != kind) or obj.get("deleted"):
            return None
        return obj

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Objects of one type, newest first (Stripe's list order)."""
        ids = self.order.get(kind, [])
        out = [self.objects[i] for i in reversed(ids) if not self.objects[i].get("deleted")]
        return out

    def note(self, object_id: str) -> dict[str, Any]:
        return self.notes.setdefault(object_id, {})

    def remove(self, object_id: str) -> None:
        obj = self.objects.pop(object_id, None)
        if obj is not None:
            self.order[obj["object"]].remove(object_id)

    @contextmanager
    def sandbox(self) -> Iterator[None]:
        """Work done in the block is forgotten: it runs on copies, then the originals come back.
        Events are never changed once made, so they are shared, and new ones dropped."""
        saved = (self.objects, self.order, self.notes, self.scheduled, self.fail_next_renewal)
        saved_dunning, rng_state = self.dunning, self.rng.getstate()
        self.objects = {
            oid: obj if obj.get("object") == "event" else copy.deepcopy(obj)
            for oid, obj in self.objects.items()
        }
        self.order = copy.deepcopy(self.order)
        self.notes = copy.deepcopy(self.notes)
        self.scheduled = copy.deepcopy(self.scheduled)
        self.fail_next_renewal = dict(self.fail_next_renewal)
        self.dunning = copy.deepcopy(self.dunning)
        try:
            yield
        finally:
            self.objects, self.order, self.notes, self.scheduled, self.fail_next_renewal = saved
            self.dunning = saved_dunning
            self.rng.setstate(rng_state)

    # --- snapshots -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "objects": self.objects,
            "order": self.order,
            "notes": self.notes,
            "idempotency": self.idempotency,
            "clock_offset": self.clock_offset,
            "deliveries": self.deliveries,
            "fail_next_renewal": self.fail_next_renewal,
            "scheduled": self.scheduled,
            "dunning": self.dunning,
        }

    def load_json(self, data: dict[str, Any]) -> None:
        self.reset()
        self.objects = data.get("objects", {})
        self.order = data.get("order", {})
        self.notes = data.get("notes", {})
        self.idempotency = data.get("idempotency", {})
        self.clock_offset = int(data.get("clock_offset", 0))
        self.deliveries = data.get("deliveries", [])
        self.fail_next_renewal = data.get("fail_next_renewal", {})
        self.scheduled = data.get("scheduled", [])
        self.dunning = data.get("dunning", {})
        self.rng.seed(len(self.objects) + len(self.notes))

    def save(self, path: str) -> None:
        """Write a snapshot atomically: temp file in the same directory, then rename."""
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".stripe-emulator-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_json(), fh, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load(self, path: str) -> bool:
        if not os.path.exists(path):
            return False
        with open(path, encoding="utf-8") as fh:
            self.load_json(json.load(fh))
        return True
