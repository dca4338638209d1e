"""The local stack on one machine: embedded Postgres (``postgres``), the Temporal dev server
with its web UI (``temporal``), the worker and demo processes (``processes``), and ``up``, which
runs them all for ``python -m starter up``. Also used by the benchmark and the fault tests."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The checkout."""
BIN = Path(sys.executable).parent
"""The virtualenv's scripts: ``temporal`` and ``temporal-test-server`` come from wheels."""


class StartupError(RuntimeError):
    """A service could not be started; the message says what to do about it."""
