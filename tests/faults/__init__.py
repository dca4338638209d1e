"""Fault tests: real processes, killed for real, and a ledger that proves no money was lost."""
