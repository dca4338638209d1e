"""``python -m relay.tail`` as a process against the real broker: what it prints, where it
starts, and how it fails."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
from typing import IO, Any

from confluent_kafka import Producer

from devstack import ROOT
from devstack.kafka import KafkaBroker
from tests.kafka.clients import produce_in_transaction, transactional_producer
from tests.kafka.conftest import create_topic


def tail_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "relay.tail", *args]


def tail_env(servers: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAFKA_")}
    if servers is not None:
        env["KAFKA_BOOTSTRAP_SERVERS"] = servers
    return env


def run_tail(servers: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tail_command(*args), cwd=ROOT, env=tail_env(servers), capture_output=True,
                          text=True, timeout=90, stdin=subprocess.DEVNULL)


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_tail_from_the_beginning_prints_committed_messages(kafka_broker: KafkaBroker, topic: str) -> None:
    servers = kafka_broker.bootstrap_servers
    producer = transactional_producer(servers)
    produce_in_transaction(producer, topic, [(b"acme", b'{"type": "FUNDS_ADDED", "amount": 250}')],
                           commit=True)
    produce_in_transaction(producer, topic, [(b"acme", b"aborted")], commit=False)
    producer.begin_transaction()
    producer.produce(topic, key=b"\xff\x00", value=b"plain text", headers=[("event", b"x"), ("event", b"y")])
    producer.commit_transaction(30)

    # Two messages are expected; an aborted one printed would take the place of the second.
    done = run_tail(servers, "--topic", topic, "--from-beginning", "--max-messages", "2",
                    "--timeout", "60")

    assert done.returncode == 0, done.stderr
    first, second = lines(done.stdout)
    assert {key: first[key] for key in ("topic", "partition", "offset", "key", "value")} == {
        "topic": topic, "partition": 0, "offset": 0, "key": "acme",
        "value": {"type": "FUNDS_ADDED", "amount": 250}}
    assert isinstance(first["timestamp"], int)
    assert second["value"] == "plain text"
    assert second["key_base64"] == "/wA=" and "key" not in second
    assert second["headers"] == [["event", "x"], ["event", "y"]]
    assert second["offset"] > 2  # after the aborted message and the two transaction markers
    assert "2 message(s)" in done.stderr


def test_tail_from_the_end_prints_only_what_comes_after_it_starts(kafka_broker: KafkaBroker) -> None:
    servers = kafka_broker.bootstrap_servers
    topic = create_topic(servers, partitions=2)
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True})
    for partition in (0, 1):
        producer.produce(topic, value=b"old", partition=partition)
    producer.flush(30)

    with subprocess.Popen(tail_command("--topic", topic, "--max-messages", "2", "--timeout", "60"),
                          cwd=ROOT, env=tail_env(servers), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL) as tail:
        assert tail.stderr is not None
        notes = read_lines(tail.stderr)
        started = [notes.get(timeout=60) for _ in range(2)]
        assert sorted(started) == [f"kafka tail: reading {topic} [{p}] from offset 1" for p in (0, 1)]
        for partition in (0, 1):
            producer.produce(topic, value=b"new", partition=partition)
        producer.flush(30)
        stdout, _ = tail.communicate(timeout=60)

    assert tail.returncode == 0
    printed = lines(stdout)
    assert sorted((line["partition"], line["offset"], line["value"]) for line in printed) == [
        (0, 1, "new"), (1, 1, "new")]


def test_tail_without_bootstrap_servers_is_a_usage_error() -> None:
    done = run_tail(None, "--timeout", "5")
    assert done.returncode == 2
    assert "KAFKA_BOOTSTRAP_SERVERS is not set" in done.stderr


def test_tail_rejects_a_bad_topic_name(kafka_broker: KafkaBroker) -> None:
    done = run_tail(kafka_broker.bootstrap_servers, "--topic", "no spaces", "--timeout", "5")
    assert done.returncode == 2
    assert "is not a Kafka topic name" in done.stderr


def test_tail_reports_an_unreachable_broker() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_tail(f"127.0.0.1:{port}", "--timeout", "3")
    assert done.returncode == 6
    assert "cannot reach Kafka" in done.stderr


def read_lines(stream: IO[str]) -> queue.Queue[str]:
    """The stream's lines, read by a thread, so that a test can wait for one with a timeout."""
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            found.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return found
