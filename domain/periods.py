"""Billing periods: how long each is, and where each ends.

An account chooses its period when it opens: ``monthly``, ``weekly``, ``daily`` or an ISO 8601
duration (``P1M``, ``P10D``, ``PT30S``, ``P1Y2M3DT4H``). Period ends are counted from the
opening instant, never chained: the n-th end is the anchor plus n periods, and a month added
to the 31st lands on the last day of a shorter month. Opened on 31 January, the first period
ends on the last day of February, the second on 31 March.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

NAMED = {"monthly": "P1M", "weekly": "P7D", "daily": "P1D"}
SHORTEST = timedelta(seconds=1)
_ISO = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
                  r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class InvalidPeriod(ValueError):
    """Not a billing period: ``monthly``, ``weekly``, ``daily`` or an ISO 8601 duration."""


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """``months`` calendar months plus a fixed ``span`` (days, hours, minutes, seconds)."""

    months: int
    span: timedelta

    @classmethod
    def parse(cls, text: str) -> BillingPeriod:
        found = _ISO.match(NAMED.get(text, text)) if isinstance(text, str) else None
        if found is None or text in ("P", "PT") or text.endswith("T"):
            raise InvalidPeriod(f"a billing period is monthly, weekly, daily or an ISO 8601 "
                                f"duration such as P1M, P10D or PT30S; got {text!r}")
        years, months, weeks, days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
        period = cls(12 * years + months,
                     timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds))
        if period.months == 0 and period.span < SHORTEST:
            raise InvalidPeriod(f"a billing period lasts at least one second; got {text!r}")
        if period.months > 120 or period.span > timedelta(days=3660):
            raise InvalidPeriod(f"a billing period lasts at most ten years; got {text!r}")
        return period

    def end(self, anchor: datetime, count: int) -> datetime:
        """The end of the ``count``-th period after ``anchor`` (1: the first)."""
        return _add_months(anchor, self.months * count) + self.span * count

    def next_end(self, anchor: datetime, after: datetime) -> datetime:
        """The first period end strictly after ``after``."""
        count = 1
        if self.months == 0:  # a fixed span: jump straight there
            count = max(1, (after - anchor) // self.span)
        while self.end(anchor, count) <= after:
            count += 1
        return self.end(anchor, count)


def _add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus ``months`` calendar months, the day clamped to the month's last."""
    if not months:
        return moment
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
