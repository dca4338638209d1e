"""Eventually consistent projections of the log, fed by the gap-safe feed (``feed``).

``PROJECTIONS`` are the ones the runner (``runner``) keeps up to date, each with a checkpoint
row that advances in the transaction of its writes: the account ``statement``, the
``daily_totals`` per currency and the ``invoices`` (with their lines and credit notes).
``accounts`` is a projection too, but the append writes it in the same statement as the events;
``REPLAYED`` are all that a replay rebuilds from the log.
"""

from __future__ import annotations

from projections.accounts import Accounts
from projections.base import Projection
from projections.daily_totals import DailyTotals
from projections.invoices import Invoices
from projections.statement import Statement

PROJECTIONS: tuple[Projection, ...] = (Statement(), DailyTotals(), Invoices())
REPLAYED: tuple[Projection, ...] = (Accounts(), *PROJECTIONS)


def by_name(name: str) -> Projection:
    """The projection called ``name``; ``KeyError`` naming the known ones otherwise."""
    for projection in REPLAYED:
        if projection.name == name:
            return projection
    raise KeyError(f"no projection {name!r}; known: {', '.join(p.name for p in REPLAYED)}")
