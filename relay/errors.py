"""The relay's typed errors: what the loop waits out, and what it cannot."""

from __future__ import annotations


class KafkaUnavailable(RuntimeError):
    """Kafka did not answer, or a transaction failed: start over from the committed checkpoint."""


class RelayFenced(RuntimeError):
    """Another relay with the same ``transactional.id`` took over; this one must stop."""


class RelaySetupError(RuntimeError):
    """The topics are not as the relay needs them (the message says what to do)."""
