"""Metrics and logs: what the service tells its operators.

``metrics`` names our metrics and records them through the Temporal SDK's meter; ``runtime``
serves them (with the SDK's own) on the worker's Prometheus endpoint; ``accounts`` is what the
account workflow records; ``lag`` samples the projections' lag in the worker; ``http`` is the
gateway's ``/metrics`` and request log; ``logs`` the JSON log lines (``BILLING_LOG_FORMAT``).
"""
