"""Formatting for integer units: money is cents, credits are whole numbers."""

from __future__ import annotations

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

from hrvstr.formatting import cents

register = template.Library()


register.filter("cents", cents)


@register.filter
def limit(value: int | None) -> str:
    return "Unlimited" if value is None else intcomma(value)


ACRONYMS = {"sec": "SEC", "api": "API"}


@register.filter
def humanize_key(value: str) -> str:
    """A catalogue key for people: ``sec_filings`` -> "SEC filings"."""
    words = [ACRONYMS.get(word, word) for word in value.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


@register.filter
def action_name(key: str) -> str:
    """A credit action's or component's name from the catalogue (the key if unknown)."""
    from subscriptions import catalogue

    spec = catalogue.CREDIT_ACTIONS.get(key) or catalogue.COMPONENTS.get(key)
    return spec.name if spec else humanize_key(key)
