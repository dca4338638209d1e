"""``domain.periods``: which texts are billing periods, and where each period ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.commands import OpenAccount
from domain.periods import BillingPeriod, InvalidPeriod

JAN_31 = datetime(2027, 1, 31, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize("text, months, span", [
    ("monthly", 1, timedelta()), ("weekly", 0, timedelta(days=7)), ("daily", 0, timedelta(days=1)),
    ("P1M", 1, timedelta()), ("P10D", 0, timedelta(days=10)), ("PT30S", 0, timedelta(seconds=30)),
    ("P2W", 0, timedelta(days=14)), ("P1Y2M3DT4H5M6S", 14, timedelta(days=3, hours=4, minutes=5, seconds=6)),
    ("PT1S", 0, timedelta(seconds=1)), ("P10Y", 120, timedelta()), ("P1MT1H", 1, timedelta(hours=1)),
])
def test_periods_parse(text: str, months: int, span: timedelta):
    assert BillingPeriod.parse(text) == BillingPeriod(months, span)


@pytest.mark.parametrize("text", [
    "", "P", "PT", "P1DT", "P0D", "PT0S", "P0Y0M", "PT-1S", "-P1D", "monthly2", "Monthly", "1M", "P1.5D",
    "P11Y", "P121M", "P3661D", " P1D", "P1D ", "p1d",
])
def test_anything_else_is_refused_with_the_text_in_the_message(text: str):
    with pytest.raises(InvalidPeriod) as info:
        BillingPeriod.parse(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("text", ["PT1S\n", "monthly\n", "P1D\n\n"])
def test_an_account_is_not_opened_with_a_line_break_in_its_period(text: str):
    with pytest.raises(ValidationError, match="billing period"):
        OpenAccount(account_id="a", currency="USD", billing_period=text)


def test_a_period_that_is_not_text_is_refused():
    with pytest.raises(InvalidPeriod):
        BillingPeriod.parse(30)


def test_months_follow_the_calendar_from_the_anchor_never_chained():
    monthly = BillingPeriod.parse("monthly")
    ends = [monthly.end(JAN_31, n) for n in range(1, 14)]

    assert [(end.month, end.day) for end in ends] == [
        (2, 28), (3, 31), (4, 30), (5, 31), (6, 30), (7, 31), (8, 31), (9, 30), (10, 31), (11, 30),
        (12, 31), (1, 31), (2, 29)]  # 2028 is a leap year
    assert all((end.hour, end.minute, end.tzinfo) == (10, 30, UTC) for end in ends)
    assert ends[-1].year == 2028


def test_mixed_periods_add_the_months_then_the_span_per_count():
    period = BillingPeriod.parse("P1M1D")
    assert period.end(JAN_31, 1) == datetime(2027, 3, 1, 10, 30, tzinfo=UTC)  # 28 Feb + 1 day
    assert period.end(JAN_31, 2) == datetime(2027, 4, 2, 10, 30, tzinfo=UTC)  # 31 Mar + 2 days


def test_next_end_is_strictly_after():
    monthly, daily = BillingPeriod.parse("monthly"), BillingPeriod.parse("daily")
    assert monthly.next_end(JAN_31, JAN_31) == datetime(2027, 2, 28, 10, 30, tzinfo=UTC)
    assert monthly.next_end(JAN_31, datetime(2027, 2, 28, 10, 30, tzinfo=UTC)) == datetime(
        2027, 3, 31, 10, 30, tzinfo=UTC)
    assert daily.next_end(JAN_31, JAN_31 + timedelta(days=5)) == JAN_31 + timedelta(days=6)
    assert daily.next_end(JAN_31, JAN_31 + timedelta(days=5, seconds=-1)) == JAN_31 + timedelta(days=5)


@given(text=st.sampled_from(["monthly", "weekly", "daily", "PT30S", "P1M1D", "P3M", "PT7H"]),
       offset=st.integers(min_value=0, max_value=3 * 365 * 86_400))
def test_next_end_is_the_first_anchored_end_after_any_moment(text: str, offset: int):
    period = BillingPeriod.parse(text)
    after = JAN_31 + timedelta(seconds=offset)

    found = period.next_end(JAN_31, after)

    count = (found - JAN_31) // period.span if not period.months else 1
    while period.end(JAN_31, count) < found:  # months: at most a few dozen steps
        count += 1
    assert period.end(JAN_31, count) == found > after  # an anchored end, after the moment
    assert count == 1 or period.end(JAN_31, count - 1) <= after  # and the first such
