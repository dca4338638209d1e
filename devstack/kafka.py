"""A real Apache Kafka broker on 127.0.0.1: one node in KRaft combined mode (broker and
controller in one JVM), its jars from Maven (``devstack.kafka_jars``).

``start_kafka(data_dir)`` formats ``data_dir`` for a fresh cluster the first time and reuses it
(and its ports) afterwards, so a broker restarted on the same data dir keeps its messages.
The settings are those of a single node that still serves idempotent and transactional
producers: every internal topic with one replica, ``transaction.state.log.min.isr=1``.
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from devstack import StartupError
from devstack.kafka_jars import JarsUnavailable, JavaUnavailable, ensure_jars, find_java, jars_cached
from devstack.processes import stop_process, tail
from devstack.temporal import port_is_free

LOG4J_CONFIG = Path(__file__).resolve().parent / "kafka" / "log4j2.properties"
HEAP = "256m"
JVM_OPTIONS = ("-Xms32m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
"""A small broker for one machine: the serial collector (G1's threads and regions buy nothing
on 2 cores) and the client compiler only, which halves the start (4.9 s instead of 10.9 s to
"Kafka Server started" here) for a peak speed this stack never needs."""

__all__ = ["JarsUnavailable", "JavaUnavailable", "KafkaBroker", "check_kafka_prerequisites",
           "kafka_available", "start_kafka"]


def kafka_available() -> bool:
    """Whether a broker can start here: Java 17+, and the jars cached or Maven to fetch them.

    ``make run`` asks this to skip Kafka quietly on a machine without Java."""
    try:
        check_kafka_prerequisites()
    except StartupError:
        return False
    return True


def check_kafka_prerequisites() -> None:
    """Raise ``JavaUnavailable`` or ``JarsUnavailable``, saying what is missing, or return."""
    find_java()
    if not jars_cached() and shutil.which("mvn") is None:
        raise JarsUnavailable("the Kafka broker's jars are not cached yet and `mvn` (Maven 3) "
                              "was not found to fetch them; install Maven")


@dataclass
class KafkaBroker:
    """A running broker. ``bootstrap_servers`` is what clients connect to."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    controller_port: int

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    def stop(self, timeout: float = 30) -> None:
        """Controlled shutdown (SIGTERM); SIGKILL if it takes longer than ``timeout`` s."""
        stop_process(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, for fault tests. The next start recovers the logs."""
        self.process.kill()
        self.process.wait(10)

    def restart(self, timeout: float = 60) -> None:
        """Stop (if running) and start again on the same data dir and ports."""
        self.stop()
        self.process = _launch(self.data_dir)
        _serve(self, timeout)


def start_kafka(data_dir: Path, *, port: int | None = None, controller_port: int | None = None,
                timeout: float = 60) -> KafkaBroker:
    """Start a broker on ``data_dir`` and return once it serves.

    Ports: those given, else those ``data_dir`` was last started with, else free ones. Fetches
    the jars on first use (which can take a minute). Raises ``JavaUnavailable``,
    ``JarsUnavailable`` or ``StartupError`` (with the end of the broker's log)."""
    java = find_java()
    libs = ensure_jars()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    previous = _read_ports(data_dir) or _free_ports()
    port, controller_port = port or previous[0], controller_port or previous[1]
    for wanted in (port, controller_port):
        if not port_is_free("127.0.0.1", wanted):
            raise StartupError(f"port {wanted} on 127.0.0.1 is already in use; is a Kafka broker "
                               f"already running on {data_dir}? Pick other ports or stop it.")
    _write_properties(data_dir, port, controller_port)
    if not (data_dir / "storage" / "meta.properties").exists():
        _format(java, libs, data_dir)
    broker = KafkaBroker(_launch(data_dir, java, libs), data_dir, port, controller_port)
    _serve(broker, timeout)
    return broker


def _serve(broker: KafkaBroker, timeout: float) -> None:
    """Wait until ``broker`` serves; stop it if it does not (or if we are interrupted)."""
    try:
        _wait_until_serving(broker, timeout)
    except BaseException:
        broker.stop()
        raise


def _launch(data_dir: Path, java: Path | None = None, libs: Path | None = None) -> subprocess.Popen[bytes]:
    java = java or find_java()
    libs = libs or ensure_jars()
    command = [str(java), f"-Xmx{HEAP}", *JVM_OPTIONS, f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
               "-cp", f"{libs}/*", "kafka.Kafka", str(data_dir / "server.properties")]
    with (data_dir / "broker.log").open("ab") as log:
        # Its own session: a Ctrl-C in the terminal reaches only the starter, which stops it.
        return subprocess.Popen(command, cwd=data_dir, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _format(java: Path, libs: Path, data_dir: Path) -> None:
    command = [str(java), f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", "-cp", f"{libs}/*",
               "kafka.tools.StorageTool", "format", "-t", new_cluster_id(),
               "-c", str(data_dir / "server.properties")]
    with (data_dir / "broker.log").open("ab") as log:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              timeout=120)
    if done.returncode != 0:
        raise StartupError(f"formatting the Kafka storage in {data_dir} failed (exit "
                           f"{done.returncode}):\n{tail(data_dir / 'broker.log')}")


def new_cluster_id() -> str:
    """A cluster id as ``StorageTool random-uuid`` makes one (base64url of 16 random bytes),
    without starting a JVM for it. Like Kafka, never one that starts with "-"."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _write_properties(data_dir: Path, port: int, controller_port: int) -> None:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir / "storage"),
        "num.partitions": "1",
        # One node: every internal topic has one replica, or it is never created.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Not 50 partitions each: one node gains nothing from them, and every start (and every
        # recovery after a crash) loads them all.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        # A lone consumer should not wait 3 s for company before it gets its partitions.
        "group.initial.rebalance.delay.ms": "0",
    }
    text = "".join(f"{key}={value}\n" for key, value in settings.items())
    (data_dir / "server.properties").write_text(text)


def _read_ports(data_dir: Path) -> tuple[int, int] | None:
    """The (client, controller) ports ``data_dir``'s broker last listened on, if any."""
    try:
        lines = (data_dir / "server.properties").read_text().splitlines()
    except OSError:
        return None
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    try:
        port = int(values["advertised.listeners"].rsplit(":", 1)[1])
        controller_port = int(values["controller.quorum.voters"].rsplit(":", 1)[1])
    except (KeyError, IndexError, ValueError):
        return None
    return port, controller_port


def _wait_until_serving(broker: KafkaBroker, timeout: float) -> None:
    """Return once the broker answers a metadata request; raise StartupError if it exits or
    the time runs out."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout
    # Wait for the listener first: librdkafka logs every refused connection to stderr.
    while not _accepts(broker.port):
        _check_alive(broker)
        if time.monotonic() > deadline:
            raise StartupError(f"the Kafka broker did not listen on port {broker.port} within "
                               f"{timeout:.0f} s; see {broker.log_path}:\n{tail(broker.log_path)}")
        time.sleep(0.1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    while True:
        _check_alive(broker)
        try:
            if admin.list_topics(timeout=1).brokers:
                return
        except Exception as error:  # noqa: BLE001 - not serving yet; retried until the deadline
            if time.monotonic() > deadline:
                raise StartupError(f"the Kafka broker did not serve within {timeout:.0f} s "
                                   f"({error}); see {broker.log_path}") from None
        time.sleep(0.1)


def _check_alive(broker: KafkaBroker) -> None:
    if broker.process.poll() is not None:
        raise StartupError(f"the Kafka broker exited with code {broker.process.returncode}; see "
                           f"{broker.log_path}:\n{tail(broker.log_path)}")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _free_ports() -> tuple[int, int]:
    """Two ports free now; both held open while choosing, so that they differ."""
    with socket.socket() as first, socket.socket() as second:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        return int(first.getsockname()[1]), int(second.getsockname()[1])
