"""List objects with Stripe's cursor paging, and ``expand[]`` of ids into objects."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .errors import StripeError, invalid
from .objects import list_object

LIST_SPEC = {"limit": "int", "starting_after": "str", "ending_before": "str"}
MAX_EXPAND_DEPTH = 4


def paginate(items: list[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
    """Slice newest-first ``items`` by ``limit``/``starting_after``/``ending_before``."""
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        raise invalid("limit", "Limit must be between 1 and 100.", "parameter_invalid_integer")
    ids = [o["id"] for o in items]
    after, before = params.get("starting_after"), params.get("ending_before")
    if after is not None and before is not None:
        raise StripeError(
            400,
            "You may only specify one of these parameters: ending_before, starting_after.",
            code="parameters_exclusive",
        )
    if after is not None:
        if after not in ids:
            raise invalid("starting_after", f"No such object: '{after}'", "resource_missing")
        rest = items[ids.index(after) + 1 :]
        page = rest[:limit]
        has_more = len(rest) > limit
    elif before is not None:
        if before not in ids:
            raise invalid("ending_before", f"No such object: '{before}'", "resource_missing")
        rest = items[: ids.index(before)]
        page = rest[-limit:]
        has_more = len(rest) > limit
    else:
        page = items[:limit]
        has_more = len(items) > limit
    return list_object(url, [copy.deepcopy(o) for o in page], has_more)


Lookup = Callable[[str], "dict[str, Any] | None"]
Includer = Callable[[dict[str, Any], str], "dict[str, Any] | list[Any] | None"]


def expand(obj: Any, paths: list[str], lookup: Lookup, include: Includer) -> Any:
    """Apply ``expand[]`` paths to a rendered object in place and return it.

    ``lookup(id)`` returns a fresh copy of the object with that id; ``include(obj, field)``
    returns the value of a field Stripe only includes when expanded (or None).
    """
    for path in paths:
        parts = path.split(".")
        if len(parts) > MAX_EXPAND_DEPTH + (1 if parts[0] == "data" else 0):
            raise invalid(
                "expand",
                f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property. "
                f"Property: {path}",
                "parameter_invalid_empty",
            )
        _expand_one(obj, parts, path, lookup, include)
    return obj


def _expand_one(obj: Any, parts: list[str], path: str, lookup: Lookup, include: Includer) -> None:
    if not parts:
        return
    if isinstance(obj, list):
        for item in obj:
            _expand_one(item, parts, path, lookup, include)
        return
    if not isinstance(obj, dict):
        return
    head, rest = parts[0], parts[1:]
    if obj.get("object") == "list" and head == "data":
        for item in obj["data"]:
            _expand_one(item, rest, path, lookup, include)
        return
    if head not in obj:
        value = include(obj, head)
        if value is None:
            raise invalid(
                "expand", f"This property cannot be expanded ({head}).", "parameter_invalid_empty"
            )
        obj[head] = value
    value = obj[head]
    if isinstance(value, str):
        found = lookup(value)
        if found is not None:
            obj[head] = value = found
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        # a list of ids (invoice.discounts, subscription.discounts)
        found_all = [lookup(v) for v in value]
        obj[head] = value = [
            f if f is not None else v for f, v in zip(found_all, value, strict=True)
        ]
    if rest:
        _expand_one(value, rest, path, lookup, include)
