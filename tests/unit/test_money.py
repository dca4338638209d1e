"""Money at the edges: major-unit decimals to integer minor units and back, per ISO 4217."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.money import MAX_AMOUNT, MoneyError, currency_exponent, format_minor_units, to_minor_units


@pytest.mark.parametrize("code, exponent", [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3),
                                            ("BHD", 3), ("KRW", 0)])
def test_currency_exponent(code, exponent):
    assert currency_exponent(code) == exponent


@pytest.mark.parametrize("code", ["usd", "Usd", "US", "USDD", "", "XYZ", "XAU", "XXX", "XTS",
                                  None, 840, "ÜSD"], ids=repr)
def test_unusable_currencies_are_refused(code):
    with pytest.raises(MoneyError):
        currency_exponent(code)


@pytest.mark.parametrize("text, currency, minor", [
    ("12.50", "USD", 1250),
    ("12.5", "USD", 1250),
    ("12", "USD", 1200),
    ("0.01", "USD", 1),
    ("12.500", "USD", 1250),  # trailing zeros beyond the currency's decimals are harmless
    ("12.", "USD", 1200),
    (" 7.25 ", "USD", 725),
    ("1234", "JPY", 1234),
    ("1234.0", "JPY", 1234),
    ("1.234", "KWD", 1234),
    ("1.2", "KWD", 1200),
    ("0.001", "KWD", 1),
    ("1.2340", "KWD", 1234),
])
def test_to_minor_units(text, currency, minor):
    assert to_minor_units(text, currency) == minor


@pytest.mark.parametrize("text, currency", [
    ("12.345", "USD"), ("0.001", "USD"), ("1.5", "JPY"), ("1.01", "JPY"), ("1.2345", "KWD"),
])
def test_more_decimals_than_the_currency_has_are_refused(text, currency):
    with pytest.raises(MoneyError, match="decimal"):
        to_minor_units(text, currency)


@pytest.mark.parametrize("text", [
    "", "   ", "-1", "+1", "-0.50", "1e3", "1E3", "1e-2", "nan", "NaN", "inf", "Infinity",
    "1.2.3", "1,000", "1 000", "0x10", "abc", "1_000", "12$", ".",
    "١٢", "１２.５０", "²",  # non-ASCII digits
], ids=repr)
def test_anything_but_a_plain_positive_decimal_is_refused(text):
    with pytest.raises(MoneyError):
        to_minor_units(text, "USD")


@pytest.mark.parametrize("text", ["0", "0.00", "0.000"])
def test_zero_is_refused_unless_allowed(text):
    with pytest.raises(MoneyError, match="greater than zero"):
        to_minor_units(text, "USD")
    assert to_minor_units(text, "USD", allow_zero=True) == 0


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD"])
def test_max_amount_is_accepted_and_one_minor_unit_more_is_refused(currency):
    assert to_minor_units(format_minor_units(MAX_AMOUNT, currency), currency) == MAX_AMOUNT
    with pytest.raises(MoneyError, match="maximum"):
        to_minor_units(format_minor_units(MAX_AMOUNT + 1, currency), currency)


def test_far_too_large_amounts_are_refused():
    with pytest.raises(MoneyError, match="maximum"):
        to_minor_units("9" * 40, "USD")


@pytest.mark.parametrize("text", ["9" * 29 + ".001", "9" * 40 + ".00", "1" + "0" * 100],
                         ids=["29-digits-extra-decimals", "40-digits", "101-digits"])
def test_huge_amounts_are_a_money_error(text):
    # regression: Decimal.quantize raised decimal.InvalidOperation past 28 significant digits
    with pytest.raises(MoneyError):
        to_minor_units(text, "USD")


def test_unknown_currency_is_refused_when_converting():
    with pytest.raises(MoneyError):
        to_minor_units("1.00", "usd")
    with pytest.raises(MoneyError):
        to_minor_units("1.00", "XAU")


@pytest.mark.parametrize("minor, currency, text", [
    (1250, "USD", "12.50"),
    (5, "USD", "0.05"),
    (0, "USD", "0.00"),
    (-1250, "USD", "-12.50"),
    (-5, "USD", "-0.05"),
    (1234, "JPY", "1234"),
    (-7, "JPY", "-7"),
    (0, "JPY", "0"),
    (1234, "KWD", "1.234"),
    (1, "KWD", "0.001"),
    (-1001, "KWD", "-1.001"),
    (MAX_AMOUNT, "USD", "10000000000000.00"),
])
def test_format_minor_units(minor, currency, text):
    assert format_minor_units(minor, currency) == text


@given(minor=st.integers(min_value=1, max_value=MAX_AMOUNT),
       currency=st.sampled_from(["USD", "JPY", "KWD", "EUR", "BHD", "CLP"]))
def test_format_then_parse_round_trips(minor, currency):
    assert to_minor_units(format_minor_units(minor, currency), currency) == minor


@given(minor=st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT),
       currency=st.sampled_from(["USD", "JPY", "KWD"]))
def test_formatted_amounts_have_exactly_the_currency_decimals(minor, currency):
    text = format_minor_units(minor, currency)
    exponent = currency_exponent(currency)
    decimals = len(text.partition(".")[2])
    assert decimals == exponent and ("." in text) == (exponent > 0)
    assert text.startswith("-") == (minor < 0)
