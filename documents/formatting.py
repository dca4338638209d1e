"""Amounts and instants as people read them on a document."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from domain.money import format_minor_units

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def amount(minor_units: int, currency: str) -> str:
    """``123456, "USD"`` -> ``"1,234.56"``; the currency's own number of decimals (JPY none,
    KWD three), digits grouped by thousands."""
    text = format_minor_units(minor_units, currency)
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, fraction = digits.partition(".")
    return f"{sign}{int(whole):,}{dot}{fraction}"


def money(minor_units: int, currency: str) -> str:
    """``123456, "USD"`` -> ``"1,234.56 USD"``."""
    return f"{amount(minor_units, currency)} {currency}"


def instant(moment: datetime | None) -> str:
    """``2026-11-30 12:00:00 UTC``; an empty string for None."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def one_line(text: str) -> str:
    """``text`` with tabs, line breaks and other control characters as single spaces."""
    return _CONTROL.sub(" ", text).strip()
