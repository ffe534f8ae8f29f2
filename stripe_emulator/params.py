"""Stripe's form encoding: bracket notation in, nested dicts/lists out, checked against a spec.

``metadata[uid]=1&line_items[0][price]=p&expand[0]=x`` becomes
``{"metadata": {"uid": "1"}, "line_items": [{"price": "p"}], "expand": ["x"]}``.

A spec describes what an endpoint accepts. Leaves are type names: ``"str"``, ``"int"``,
``"bool"``, ``"meta"`` (metadata: free keys, string values, ``""`` deletes), ``"strs"`` (list of
strings), ``"any"``. A dict is a nested object, a one-element list ``[spec]`` is an array. Unknown
parameters are rejected with ``parameter_unknown``, which keeps the app honest.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from .errors import StripeError, invalid, unknown

_TOKEN = re.compile(r"\[([^\[\]]*)\]")
Spec = Any


def decode(query: str) -> dict[str, Any]:
    """Decode an x-www-form-urlencoded string with Stripe's bracket notation."""
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(query, keep_blank_values=True):
        head, _, rest = raw_key.partition("[")
        keys = [head] + (_TOKEN.findall("[" + rest) if rest else [])
        node: Any = root
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if key == "":  # "a[]=x" appends
                node.setdefault("\0append", []).append(value if last else {})
                if not last:
                    node = node["\0append"][-1]
                continue
            if last:
                node[key] = value
            else:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
    decoded: dict[str, Any] = _listify(root)
    return decoded


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if "\0append" in node and len(node) == 1:
        return [_listify(v) for v in node["\0append"]]
    items = {k: _listify(v) for k, v in node.items() if k != "\0append"}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def _bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "True", "1"):
        return True
    if value in ("false", "False", "0"):
        return False
    raise invalid(path, f"Invalid boolean: {value}", code="parameter_invalid_empty")


def _int(value: Any, path: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(path, f"Invalid integer: {value}", code="parameter_invalid_integer") from None


def check(params: Any, spec: Spec, path: str = "") -> Any:
    """Coerce ``params`` to ``spec`` or raise a Stripe-shaped 400 error."""
    if spec == "any":
        return params
    if isinstance(spec, dict):
        if params == "":
            return {}
        if not isinstance(params, dict):
            raise invalid(path, f"Invalid object for {path}", code="parameter_invalid_empty")
        out = {}
        for key, value in params.items():
            sub = f"{path}[{key}]" if path else key
            if key not in spec:
                raise unknown(sub)
            out[key] = check(value, spec[key], sub)
        return out
    if isinstance(spec, list):
        if params == "":
            return []
        if isinstance(params, dict) and all(k.isdigit() for k in params):
            params = [params[k] for k in sorted(params, key=int)]
        if not isinstance(params, list):
            raise invalid(path, f"Invalid array for {path}", code="parameter_invalid_empty")
        return [check(v, spec[0], f"{path}[{i}]") for i, v in enumerate(params)]
    if spec == "str":
        if not isinstance(params, str):
            raise invalid(path, f"Invalid string for {path}", code="parameter_invalid_empty")
        return params
    if spec == "int":
        return _int(params, path)
    if spec == "bool":
        return _bool(params, path)
    if spec == "strs":
        if isinstance(params, str):
            return [params] if params else []
        if not isinstance(params, list) or not all(isinstance(v, str) for v in params):
            raise invalid(path, f"Invalid array for {path}", code="parameter_invalid_empty")
        return params
    if spec == "meta":
        if params == "":
            return {}
        if not isinstance(params, dict):
            raise invalid(path, "Invalid metadata", code="parameter_invalid_empty")
        for key, value in params.items():
            if not isinstance(value, str):
                raise invalid(f"{path}[{key}]", "Metadata values must be strings")
            if len(key) > 40:
                raise invalid(f"{path}[{key}]", "Metadata keys are limited to 40 characters")
        return params
    if spec == "range":  # created[gte]=... or created=...
        if isinstance(params, dict):
            return {k: _int(v, f"{path}[{k}]") for k, v in params.items()}
        return {"eq": _int(params, path)}
    raise StripeError(500, f"bad spec {spec!r}", type="api_error")  # pragma: no cover


def merge_metadata(current: dict[str, str] | None, update: dict[str, str] | None) -> dict[str, Any]:
    """Stripe's metadata update: keys are merged; an empty value deletes a key."""
    out = dict(current or {})
    for key, value in (update or {}).items():
        if value == "":
            out.pop(key, None)
        else:
            out[key] = value
    return out
