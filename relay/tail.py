"""``kafka tail``: print what the billing topics hold, one JSON object per line.

    python -m relay.tail [--topic T ...] [--from-beginning] [--max-messages N] [--timeout S]

A read_committed consumer: messages of aborted transactions never show, and those of an open
transaction show once it commits. Without ``--from-beginning`` it starts at each partition's
end (its last stable offset) and says on stderr where it starts; everything committed after
that line is printed. Each line is ``{"topic", "partition", "offset", "timestamp", "key",
"value"}``, plus ``headers`` (``[name, value]`` pairs) when there are any. A key or value that
is JSON is embedded as JSON, other UTF-8 as a string, anything else as ``key_base64`` /
``value_base64``. It stops on Ctrl-C, after ``--max-messages`` or after ``--timeout`` seconds,
and commits no offsets.

Exit codes: 0 stopped as asked, 1 a fatal consumer error, 2 usage or configuration
(``KAFKA_BOOTSTRAP_SERVERS`` unset), 6 Kafka unreachable at the start.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any, TextIO

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from relay.settings import KafkaConfigError, KafkaSettings, check_bootstrap_servers, check_topic_name

OK, FAILURE, USAGE, UNAVAILABLE = 0, 1, 2, 6
CONNECT_TIMEOUT = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="billing kafka tail", description="Print the messages of the billing topics as JSON lines "
        "(read_committed). Bootstrap servers and topic names come from KAFKA_BOOTSTRAP_SERVERS, "
        "KAFKA_TOPIC_ACCOUNT_EVENTS and KAFKA_TOPIC_INVOICES.")
    parser.add_argument("--topic", action="append", metavar="T",
                        help="a topic to read (repeatable); default: the account events and invoices")
    parser.add_argument("--from-beginning", action="store_true",
                        help="start at the oldest message instead of the end")
    parser.add_argument("--max-messages", type=_positive(int), metavar="N", help="stop after N messages")
    parser.add_argument("--timeout", type=_positive(float), metavar="S", help="stop after S seconds")
    parser.add_argument("--bootstrap-servers", metavar="HOST:PORT",
                        help="default: KAFKA_BOOTSTRAP_SERVERS")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``kafka tail`` with ``argv``; return the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed
        return stop.code if isinstance(stop.code, int) else USAGE
    try:
        settings = KafkaSettings.from_env()
        servers = args.bootstrap_servers or settings.require_bootstrap_servers()
        check_bootstrap_servers(servers, "--bootstrap-servers")
        topics = [check_topic_name(topic, "--topic") for topic in args.topic or settings.topics]
    except KafkaConfigError as error:
        print(f"kafka tail: error: {error}", file=err)
        return USAGE
    deadline = time.monotonic() + args.timeout if args.timeout else None
    tail = Tail(servers, topics, args.from_beginning, err)
    try:
        return tail.run(out, args.max_messages, deadline)
    except KeyboardInterrupt:  # before the first poll; the loop itself ends quietly
        return OK
    finally:
        tail.consumer.close()


class Tail:
    """One consumer in a throwaway group, its partitions placed where the tail starts."""

    def __init__(self, servers: str, topics: list[str], from_beginning: bool, err: TextIO) -> None:
        self.topics, self.from_beginning, self.err = topics, from_beginning, err
        self.count = 0
        self.last_error: KafkaError | None = None
        self.errors_said: set[int] = set()
        self.report_errors = False  # from the first poll on; before, the start check reports
        quiet = logging.getLogger("relay.tail.librdkafka")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False  # the client's errors reach stderr once, through error_cb
        self.consumer = Consumer({
            "bootstrap.servers": servers, "group.id": f"billing-tail-{uuid.uuid4().hex[:12]}",
            "isolation.level": "read_committed", "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            # A topic created after the tail started is found within seconds, not minutes.
            "topic.metadata.refresh.interval.ms": 5000,
            "error_cb": self._on_error, "logger": quiet,
        })

    def run(self, out: TextIO, max_messages: int | None, deadline: float | None) -> int:
        """Print messages until Ctrl-C, ``max_messages`` or ``deadline``; return the exit code."""
        if (code := self._check_reachable(deadline)) is not None:
            return code
        self.consumer.subscribe(self.topics, on_assign=self._on_assign)
        self.report_errors = True
        try:
            while (max_messages is None or self.count < max_messages) and not _passed(deadline):
                message = self.consumer.poll(0.2)
                if message is None:
                    continue
                if (error := message.error()) is not None:
                    if error.fatal():
                        print(f"kafka tail: fatal error: {error.str()}", file=self.err)
                        return FAILURE
                    if error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # said at the start
                        print(f"kafka tail: {error.str()}", file=self.err)
                    continue
                print(json.dumps(message_record(message), ensure_ascii=False), file=out, flush=True)
                self.count += 1
                self.errors_said.clear()
        except KeyboardInterrupt:
            pass
        finally:
            self.report_errors = False
        print(f"kafka tail: {self.count} message(s)", file=self.err)
        return OK

    def _check_reachable(self, deadline: float | None) -> int | None:
        timeout = CONNECT_TIMEOUT
        if deadline is not None:
            timeout = max(0.1, min(timeout, deadline - time.monotonic()))
        try:
            metadata = self.consumer.list_topics(timeout=timeout)
        except KafkaException as error:
            self.consumer.poll(0)  # serves the client's error callbacks: the likelier cause
            cause = self.last_error.str() if self.last_error else error.args[0].str()
            print(f"kafka tail: error: cannot reach Kafka ({cause})", file=self.err)
            return UNAVAILABLE
        for topic in self.topics:
            if topic not in metadata.topics:
                print(f"kafka tail: topic {topic} does not exist yet; waiting for it", file=self.err)
        return None

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Start offsets are set here, not left to auto.offset.reset, so that the line below is
        # true when printed: a read_committed consumer's high watermark is the last stable
        # offset, so a transaction still open now is printed when it commits.
        for partition in partitions:
            partition.offset, where = self._start(consumer, partition)
            print(f"kafka tail: reading {partition.topic} [{partition.partition}] from {where}",
                  file=self.err, flush=True)
        consumer.assign(partitions)

    def _start(self, consumer: Consumer, partition: TopicPartition) -> tuple[int, str]:
        """Where ``partition`` is read from, and how to say it."""
        if self.from_beginning:
            return OFFSET_BEGINNING, "the beginning"
        try:
            end = consumer.get_watermark_offsets(partition, timeout=CONNECT_TIMEOUT)[1]
        except KafkaException:  # the broker went away meanwhile: the client finds the end later
            return OFFSET_END, "its end"
        return end, f"offset {end}"

    def _on_error(self, error: KafkaError) -> None:
        # The client retries a lost broker for ever, calling back on every attempt: say each
        # kind of error once (until a message arrives again), and none once the tail stopped.
        self.last_error = error
        if self.report_errors and error.code() not in self.errors_said:
            self.errors_said.add(error.code())
            print(f"kafka tail: {error.str()}", file=self.err, flush=True)


def message_record(message: Message) -> dict[str, Any]:
    """One message as a JSON-ready object (see the module's docstring)."""
    kind, stamp = message.timestamp()
    record: dict[str, Any] = {"topic": message.topic(), "partition": message.partition(),
                              "offset": message.offset(), "timestamp": stamp if kind else None}
    record.update(_field("key", message.key()))
    record.update(_field("value", message.value()))
    if headers := message.headers():  # pairs, not a dict: a name may repeat
        pairs = headers.items() if isinstance(headers, dict) else headers
        record["headers"] = [[name, raw.decode(errors="replace") if isinstance(raw, bytes) else raw]
                             for name, raw in pairs]
    return record


def _field(name: str, raw: str | bytes | None) -> dict[str, Any]:
    if raw is None or isinstance(raw, str):
        return {name: raw}
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return {f"{name}_base64": base64.b64encode(raw).decode()}
    try:
        return {name: json.loads(text)}
    except ValueError:
        return {name: text}


def _passed(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


if __name__ == "__main__":
    sys.exit(main())
