"""Strict parsing of what clients send: JSON bodies and integers in query strings.

Python's own parsers are generous in ways an API must not be: ``"²".isdigit()`` is true (and
``int("²")`` then fails), ``int("٣")`` is 3, ``int(" 1_0 ")`` is 10, and ``json.loads`` of
100,000 nested brackets raises ``RecursionError``, which is not a ``ValueError`` and so
escaped every handler as a 500. Everything here turns bad input into a clear 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Plain ASCII digits only; 18 of them stay inside a signed 64-bit integer.
_ASCII_DIGITS = re.compile(r"[0-9]{1,18}")


def ascii_int(raw: str) -> int | None:
    """``raw`` as a non-negative integer if it is 1-18 ASCII digits and nothing else."""
    if not isinstance(raw, str) or not _ASCII_DIGITS.fullmatch(raw):
        return None
    return int(raw)


def json_loads(raw: str | bytes) -> Any:
    """``json.loads`` that fails with ``ValueError`` on too deeply nested input as well."""
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, answering 400 for input nested beyond Python's recursion limit."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply") from exc
