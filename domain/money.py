"""Money on the command line: major-unit decimals in, integer minor units out, per ISO 4217.

Amounts inside the system are always integers in the currency's minor unit (cents for USD,
yen for JPY, fils for KWD). This module is the only place that knows how many decimals a
currency has; it takes that from ISO's own table (the ``iso4217`` package).
"""

from __future__ import annotations

from iso4217 import Currency

MAX_AMOUNT = 10**15
"""The largest amount one command may carry, in minor units."""


class MoneyError(ValueError):
    """A currency code or an amount that cannot be used."""


def usable_currencies() -> list[str]:
    """Every code ``currency_exponent`` accepts, sorted (for schemas that list them)."""
    return sorted(c.code for c in Currency if c.exponent is not None)


def currency_exponent(code: str) -> int:
    """Return the number of decimals of an ISO 4217 currency usable for accounts.

    Raises MoneyError for unknown codes, lowercase codes and codes without a minor unit
    (precious metals, testing codes).
    """
    if not (isinstance(code, str) and len(code) == 3 and code.isascii() and code.isupper()):
        raise MoneyError(f"currency must be a three-letter uppercase ISO 4217 code, got {code!r}")
    try:
        exponent = Currency(code).exponent
    except ValueError:
        raise MoneyError(f"unknown ISO 4217 currency code {code!r}") from None
    if exponent is None:
        raise MoneyError(f"{code} has no minor unit and cannot be used for accounts")
    return exponent


def to_minor_units(text: str, currency: str, *, allow_zero: bool = False) -> int:
    """Convert a major-unit decimal such as ``"12.50"`` to minor units (``1250`` for USD).

    Refuses signs, exponents, non-finite values, more decimals than the currency allows,
    and amounts above MAX_AMOUNT.
    """
    exponent = currency_exponent(currency)
    cleaned = text.strip()
    whole, _, fraction = cleaned.partition(".")
    if not (whole or fraction) or not (whole + fraction).isdigit() or not (whole + fraction).isascii():
        raise MoneyError(f"amount must be a plain positive decimal like 12.50, got {text!r}")
    if len(fraction.rstrip("0")) > exponent:
        raise MoneyError(f"{currency} allows {exponent} decimal(s); {text!r} has more")
    # Exact string arithmetic: no float, and no decimal context to overflow.
    minor = int((whole or "0") + fraction[:exponent].ljust(exponent, "0"))
    if minor == 0 and not allow_zero:
        raise MoneyError("amount must be greater than zero")
    if minor > MAX_AMOUNT:
        raise MoneyError(f"amount exceeds the maximum of {format_minor_units(MAX_AMOUNT, currency)}")
    return minor


def format_minor_units(amount: int, currency: str) -> str:
    """Render minor units as a major-unit decimal with the currency's decimals: ``-1250`` -> ``-12.50``."""
    exponent = currency_exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**exponent)
    return f"{sign}{whole}.{fraction:0{exponent}d}" if exponent else f"{sign}{whole}"
