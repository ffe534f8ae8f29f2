"""Money for people: integer cents as "$19" or "$19.50", for pages, feed lines and e-mail."""

from __future__ import annotations

from django.contrib.humanize.templatetags.humanize import intcomma


def cents(value: int | None, currency: str = "usd") -> str:
    """1900 -> "$19", 1950 -> "$19.50" (USD; other currencies get their code)."""
    if value is None:
        return ""
    # A credit (a proration's unused time) is negative: -677 -> "-$6.77", not "$-7.23".
    sign = "-" if int(value) < 0 else ""
    whole, part = divmod(abs(int(value)), 100)
    amount = f"{intcomma(whole)}" + (f".{part:02d}" if part else "")
    if (currency or "usd").lower() == "usd":
        return f"{sign}${amount}"
    return f"{sign}{amount} {currency.upper()}"
