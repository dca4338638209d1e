"""CI runs the benchmark once in its quick form: it must finish and every row must reconcile.
Its speed is reported, never asserted (see BENCHMARKS.md for the full run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_completes_with_correct_results():
    run = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, stdin=subprocess.DEVNULL)
    print(run.stdout[-4000:])
    assert run.returncode == 0, run.stderr[-4000:]
    table = run.stdout
    for mode in ("1. baseline, 8 connection(s)", "2. one command per signal", "3. batching client",
                 "4. one hot account", "5. update latency, light load", "6. dev server signal intake",
                 "7. worker RSS"):
        assert mode in table
    assert "│ NO" not in table and "WRONG" not in run.stderr
