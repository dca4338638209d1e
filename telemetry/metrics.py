"""The service's own metrics, recorded through the Temporal SDK's metric meter, so that the
worker's one Prometheus endpoint serves them beside the SDK's runtime metrics.

Whoever records picks the meter of where it runs (``meter()``): inside a workflow the
workflow's meter, which records nothing while a history is replayed (a replay after a restart
or a cache eviction does not count commands again); inside an activity the activity's; anywhere
else the process's default runtime, which ``telemetry.runtime.start_metrics`` serves (a no-op
meter when nothing serves metrics, as in the CLI). The SDK adds ``namespace``, ``task_queue``
and ``workflow_type`` or ``activity_type`` to what workflows and activities record.

No label ever carries an account id: one series per account would grow without end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from temporalio import activity, workflow
from temporalio.common import MetricMeter
from temporalio.runtime import Runtime

COMMANDS = "billing_commands"
"""Counter (exposed as ``billing_commands_total``), labels ``kind`` (open, add_funds, charge,
close, reject) and ``outcome`` (applied, declined, rejected, duplicate, refused)."""
BATCH_COMMANDS = "billing_batch_commands"
"""Histogram: commands decided together and stored in one event-store call."""
APPEND_SECONDS = "billing_append_seconds"
"""Histogram: seconds one ``append_events`` activity took (its transaction, retries of a
conflict included)."""
PROJECTION_LAG_EVENTS = "billing_projection_lag_events"
"""Gauge, label ``projection``: events in the log that the projection has not applied."""
PROJECTION_LAG_SECONDS = "billing_projection_lag_seconds"
"""Gauge, label ``projection``: age of the oldest event it has not applied (0: caught up)."""
RELAY_LAG_EVENTS = "billing_relay_lag_events"
"""Gauge: events in the log that the Kafka relay has not published."""
RELAY_LAG_SECONDS = "billing_relay_lag_seconds"
"""Gauge: age of the oldest event the relay has not published (0: caught up)."""
WORKFLOWS_REVIVED = "billing_workflows_revived"
"""Counter (``billing_workflows_revived_total``), label ``status``: account workflow runs started
from the log because the account's workflow was gone (terminated, or finished after a close), by
what the log said of the account then (open, closed, missing)."""

BUCKETS: Mapping[str, Sequence[float]] = {
    BATCH_COMMANDS: (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
    APPEND_SECONDS: (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
}
"""Histogram buckets of our metrics (the SDK's defaults suit neither a count nor seconds)."""


def meter() -> MetricMeter:
    """The meter of where the caller runs: a workflow's (replay-safe), an activity's, or the
    process's default runtime's."""
    if workflow.in_workflow():
        return workflow.metric_meter()
    if activity.in_activity():
        return activity.metric_meter()
    return Runtime.default().metric_meter


def count_commands(outcomes: Iterable[tuple[str, str]]) -> None:
    """Count commands by ``(kind, outcome)``, and record how many were decided together."""
    counts = Counter(outcomes)
    found = meter()
    counter = found.create_counter(COMMANDS, "Commands decided, by kind and outcome")
    for (kind, outcome), number in counts.items():
        counter.add(number, {"kind": kind, "outcome": outcome})
    found.create_histogram(BATCH_COMMANDS, "Commands decided together, one store call").record(
        sum(counts.values()))


def append_took(seconds: float) -> None:
    """Record one append's duration."""
    meter().create_histogram_float(APPEND_SECONDS, "Seconds per append_events activity", "s").record(
        seconds)


def projection_lag(projection: str, events: int, seconds: float) -> None:
    """Set how far behind the log ``projection`` is."""
    found, attributes = meter(), {"projection": projection}
    found.create_gauge(PROJECTION_LAG_EVENTS, "Events the projection has not applied").set(
        events, attributes)
    found.create_gauge_float(PROJECTION_LAG_SECONDS, "Age of the oldest event not applied", "s").set(
        seconds, attributes)


def relay_lag(events: int, seconds: float) -> None:
    """Set how far behind the log the Kafka relay is (for ``relay.runner``, each time it
    measures its lag)."""
    found = meter()
    found.create_gauge(RELAY_LAG_EVENTS, "Events the relay has not published").set(events)
    found.create_gauge_float(RELAY_LAG_SECONDS, "Age of the oldest event not published", "s").set(seconds)


def workflows_revived(status: str, count: int = 1) -> None:
    """Count account workflow runs revived from the log, by the account's ``status`` then."""
    meter().create_counter(WORKFLOWS_REVIVED, "Account workflows started again from the log").add(
        count, {"status": status})
