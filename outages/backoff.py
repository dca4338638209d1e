"""Capped exponential backoff, and the bound on a wait: pure, no clock of their own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delays ``initial``, ``initial * factor``, … up to ``cap`` seconds: 0.5, 1, 2, 4, 8, 10,
    10, … by default. No jitter: a handful of processes outages in step costs nothing."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 10.0

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.cap and self.factor >= 1):
            raise ValueError(f"need 0 < initial <= cap and factor >= 1, got {self}")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
        if failures < 1:
            raise ValueError(f"failures counts from 1, got {failures}")
        # Past ~64 doublings the float overflows; the cap was reached long before.
        return min(self.cap, self.initial * self.factor ** min(failures - 1, 64))


@dataclass(frozen=True)
class Deadline:
    """A wait that ends at ``ends_at`` on a monotonic clock (``time.monotonic()``)."""

    started_at: float
    ends_at: float

    @classmethod
    def after(cls, seconds: float, now: float) -> Deadline:
        return cls(now, now + seconds)

    def remaining(self, now: float) -> float:
        return max(0.0, self.ends_at - now)

    def next_delay(self, backoff: Backoff, failures: int, now: float) -> float | None:
        """The pause before the next attempt, cut short by the deadline; None once it is past
        (the caller gives up)."""
        left = self.remaining(now)
        return min(backoff.delay(failures), left) if left > 0 else None
