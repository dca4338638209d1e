"""The relay as the usual outbox relays work, for the fault test to catch: the messages commit
in one transaction and the checkpoint in a second, later one. A relay killed between the two
publishes the same events again when it starts: at least once, not exactly once.

    python -m tests.kafka.at_least_once_relay      # same settings as python -m relay

The pause between the two commits only widens the window that random kills fall into.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from projections.feed import FeedEvent
from relay import __main__ as relay_main
from relay.messages import Checkpoint, messages
from relay.publisher import Publisher, _call

GAP = 0.05
"""Seconds between the commit of the messages and that of the checkpoint."""


def publish_then_checkpoint(self: Publisher, events: Sequence[FeedEvent],
                            checkpoint: Checkpoint) -> Checkpoint:
    producer = self._producer
    assert producer is not None
    after = checkpoint.after(list(events))

    def send_messages() -> None:
        producer.begin_transaction()
        for event in events:
            for message in messages(event, self.routes):
                producer.produce(message.topic, value=message.value, key=message.key)
        producer.commit_transaction(self.timeout)

    def send_checkpoint() -> None:
        producer.begin_transaction()
        producer.produce(self.settings.checkpoints_topic, value=after.encode(),
                         key=self.settings.relay_id.encode())
        producer.commit_transaction(self.timeout)

    _call(send_messages, "publishing")
    time.sleep(GAP)
    _call(send_checkpoint, "checkpointing")
    return after


if __name__ == "__main__":
    Publisher.publish = publish_then_checkpoint  # type: ignore[method-assign]
    sys.exit(relay_main.main())
