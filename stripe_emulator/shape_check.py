"""Check Stripe-shaped JSON against the installed stripe-python's class annotations.

The generated resource classes of stripe-python carry a type annotation for every field of
every API object at the SDK's pinned API version. This module treats them as an offline schema:
``check(obj)`` returns a list of human-readable problems (unknown fields, missing fields,
wrong types, values outside a Literal). Upgrading stripe-python re-checks the emulator.

This module imports ``stripe`` and is meant for tests and tooling, not for the emulator's
runtime (which is stdlib only).
"""

from __future__ import annotations

import types
import typing
from functools import cache
from importlib import import_module
from typing import Any

import stripe
from stripe._object_classes import OBJECT_CLASSES as _OBJECT_CLASS_PATHS

__all__ = ["INCLUDABLE", "check", "class_for", "event_types"]

# Fields Stripe leaves out of a response unless they are expanded (``expand[]=...``); the SDK
# annotates them like ordinary optional fields, so they are listed here. ``deleted`` only
# appears on deleted objects.
INCLUDABLE: dict[str, frozenset[str]] = {
    "customer": frozenset(
        {"sources", "subscriptions", "tax_ids", "tax", "cash_balance", "invoice_credit_balance"}
    ),
    "checkout.session": frozenset({"line_items"}),
    "price": frozenset({"currency_options", "tiers"}),
    "invoice": frozenset({"payments"}),
    "charge": frozenset({"refunds"}),
    "coupon": frozenset({"currency_options"}),
    "webhook_endpoint": frozenset({"secret"}),
    "item": frozenset({"discounts", "taxes"}),
    "plan": frozenset({"tiers"}),
}
ALWAYS_OPTIONAL = frozenset({"deleted"})


@cache
def _classes() -> dict[str, type]:
    out: dict[str, type] = {}
    for name, (module, cls_name) in _OBJECT_CLASS_PATHS.items():
        try:
            out[name] = getattr(import_module(module), cls_name)
        except (ImportError, AttributeError):  # pragma: no cover - SDK internals moved
            continue
    return out


def class_for(object_name: str) -> type | None:
    """The stripe-python class for an API ``object`` value such as ``"invoice"``."""
    return _classes().get(object_name)


@cache
def event_types() -> frozenset[str]:
    """Every event ``type`` the installed SDK's ``Event.type`` Literal allows."""
    hint = stripe.Event.__annotations__["type"]
    found: set[str] = set()

    def walk(tp: Any) -> None:
        if typing.get_origin(tp) is typing.Literal:
            found.update(typing.get_args(tp))
        for arg in typing.get_args(tp):
            walk(arg)

    walk(hint)
    return frozenset(found)


def _annotations(cls: type) -> dict[str, Any]:
    return {
        k: v
        for k, v in getattr(cls, "__annotations__", {}).items()
        if not k.startswith("_") and typing.get_origin(v) is not typing.ClassVar
    }


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(tp)
    )


def _resolve(tp: Any, value: Any) -> Any:
    if isinstance(tp, str):
        tp = typing.ForwardRef(tp)
    if not isinstance(tp, typing.ForwardRef):
        return tp
    if isinstance(value, dict) and value.get("object") in _classes():
        return _classes()[value["object"]]
    matches = [c for c in _classes().values() if c.__name__ == tp.__forward_arg__]
    return matches[0] if len(matches) == 1 else Any


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, path: str, msg: str) -> None:
        self.errors.append(f"{path}: {msg}")

    def value(self, value: Any, tp: Any, path: str, depth: int = 0) -> None:
        if depth > 40:
            return
        tp = _resolve(tp, value)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is Any or tp is object:
            return
        if origin in (typing.Union, types.UnionType):
            if value is None:
                if type(None) not in args:
                    self.err(path, "null but not Optional")
                return
            best: list[str] | None = None
            for arg in args:
                if arg is type(None):
                    continue
                sub = _Checker()
                sub.value(value, arg, path, depth + 1)
                if not sub.errors:
                    return
                if best is None or len(sub.errors) < len(best):
                    best = sub.errors
            self.errors.extend(best or [f"{path}: no union branch matched"])
            return
        if origin is typing.Literal:
            if value not in args:
                self.err(path, f"{value!r} not in {args}")
            return
        if value is None:
            self.err(path, "null but not Optional")
            return
        if origin in (list, typing.List):  # noqa: UP006
            if not isinstance(value, list):
                self.err(path, f"expected list, got {type(value).__name__}")
                return
            for i, item in enumerate(value):
                self.value(item, args[0] if args else Any, f"{path}[{i}]", depth + 1)
            return
        if origin in (dict, typing.Dict):  # noqa: UP006
            if not isinstance(value, dict):
                self.err(path, "expected dict")
            return
        if tp is bool:
            if not isinstance(value, bool):
                self.err(path, f"expected bool, got {type(value).__name__}")
            return
        if tp is int:
            if not isinstance(value, int) or isinstance(value, bool):
                self.err(path, f"expected int, got {type(value).__name__}")
            return
        if tp is float:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                self.err(path, f"expected number, got {type(value).__name__}")
            return
        if tp is str:
            if not isinstance(value, str):
                self.err(path, f"expected str, got {type(value).__name__}")
            return
        cls = origin or tp
        if isinstance(cls, type) and issubclass(cls, stripe.StripeObject):
            if not isinstance(value, dict):
                self.err(path, f"expected object, got {type(value).__name__}")
                return
            if cls.__name__ in ("ListObject", "SearchResultObject"):
                self.list_object(value, args[0] if args else Any, path, depth)
                return
            if cls.__name__ == "UntypedStripeObject":
                return
            self.obj(value, cls, path, depth + 1)
        # any other typing construct is accepted

    def list_object(self, value: dict[str, Any], item_tp: Any, path: str, depth: int) -> None:
        if value.get("object") != "list":
            self.err(path, "expected a list object")
        for key in ("url", "has_more", "data"):
            if key not in value:
                self.err(path, f"list object without {key!r}")
        for key in value:
            if key not in ("object", "url", "has_more", "data"):
                self.err(f"{path}.{key}", "unknown field for a list object")
        if not isinstance(value.get("url"), str):
            self.err(f"{path}.url", "expected str")
        if not isinstance(value.get("has_more"), bool):
            self.err(f"{path}.has_more", "expected bool")
        for i, item in enumerate(value.get("data") or []):
            self.value(item, item_tp, f"{path}.data[{i}]", depth + 1)

    def obj(self, value: dict[str, Any], cls: type, path: str, depth: int = 0) -> None:
        ann = _annotations(cls)
        if not ann:
            return
        object_name = ann.get("object") and typing.get_args(ann["object"])
        name = object_name[0] if object_name else None
        omitted_ok = ALWAYS_OPTIONAL | INCLUDABLE.get(name or "", frozenset())
        for key in value:
            if key not in ann:
                self.err(f"{path}.{key}", f"unknown field for {cls.__name__}")
        for key, tp in ann.items():
            if key not in value:
                if key not in omitted_ok:
                    self.err(f"{path}.{key}", "missing field")
                continue
            self.value(value[key], tp, f"{path}.{key}", depth + 1)


def check(obj: dict[str, Any]) -> list[str]:
    """Return the problems found in one API object (an empty list when it matches)."""
    if not isinstance(obj, dict):
        return [f"not an object: {type(obj).__name__}"]
    name = obj.get("object")
    checker = _Checker()
    if name == "list":
        checker.list_object(obj, Any, "list", 0)
        for i, item in enumerate(obj.get("data") or []):
            checker.errors.extend(f"list.data[{i}] {e}" for e in check(item))
        return checker.errors
    cls = class_for(name) if isinstance(name, str) else None
    if cls is None:
        return [f"unknown object type {name!r}"]
    if obj.get("deleted") is True:  # DELETE responses: {"id", "object", "deleted": true}
        extra = set(obj) - {"id", "object", "deleted"}
        return [f"{name}.{k}: unexpected on a deleted object" for k in sorted(extra)]
    checker.obj(obj, cls, str(name))
    return checker.errors
