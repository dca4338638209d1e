"""Fixtures of the fault tests: a fresh ``Stack`` per test, torn down even when the test fails,
and a "fault summary" section at the end of the run with each scenario's one-line summary."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.faults.harness import Stack, fault_seed

SUMMARY_PROPERTY = "fault_summary"


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    """Services for one test, not yet started (``await stack.start(workers=n)``). The data dir
    sits straight under the system temp dir: pgserver, running as root, gives its own user
    o+rx on every parent folder, and pytest resets its own temp dirs to 0700."""
    root = Path(tempfile.mkdtemp(prefix="billing-faults-"))
    root.chmod(0o755)
    services = Stack(root)
    try:
        yield services
    finally:
        await services.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def seed() -> int:
    return fault_seed()


@pytest.fixture
def report_summary(record_property) -> Callable[[str], None]:
    """Print a scenario's summary line and attach it to the test's report (and JUnit XML)."""

    def report(line: str) -> None:
        print(line, flush=True)
        record_property(SUMMARY_PROPERTY, line)

    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    lines = [value for reports in terminalreporter.stats.values() for report in reports
             if getattr(report, "when", None) == "call"
             for name, value in getattr(report, "user_properties", ()) if name == SUMMARY_PROPERTY]
    if lines:
        terminalreporter.section("fault summary")
        for line in lines:
            terminalreporter.line(line)
