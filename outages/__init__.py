"""Riding out an outage: the capped exponential backoff (``backoff``), and a process's wait at
start for the services it needs, one readable log line per attempt and bounded in time
(``dependencies``). The worker uses both; ``starter up`` uses the backoff to restart it."""
