"""Benchmarks: ``python -m bench`` (about 3 minutes) or ``python -m bench --quick`` (CI smoke)."""
