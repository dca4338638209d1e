"""Determinism: recorded AccountWorkflow histories replayed against the current code."""
