"""``python -m gateway``: the HTTP API alone, on BILLING_HTTP_HOST:BILLING_HTTP_PORT.

Prints ``gateway listening on http://HOST:PORT`` once it accepts connections (the port it got,
when BILLING_HTTP_PORT is 0); Prometheus metrics are at ``/metrics`` on that port
(BILLING_METRICS_PORT is the worker's). SIGTERM or Ctrl-C: finishes the requests in flight and
exits 0. Exit codes: 1 it could not start (e.g. the port is taken), 2 bad settings.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import uvicorn

from config import ConfigError
from gateway.app import create_app
from gateway.settings import GatewaySettings
from telemetry import logs, runtime

READY_LINE = "gateway listening on"
START_TIMEOUT = 30.0  # seconds for uvicorn to bind and start


async def serve(settings: GatewaySettings) -> int:
    """Run the API until a signal stops it; the exit code."""
    # With JSON logs uvicorn's loggers go through ours (log_config=None keeps its hands off them);
    # its access log stays off: telemetry.http logs each request, with account and command.
    log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    config = uvicorn.Config(create_app(settings), host=settings.http_host, port=settings.http_port,
                            log_level="info", access_log=False, lifespan="off", log_config=log_config)
    server = uvicorn.Server(config)
    running = asyncio.create_task(_serve(server))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while not server.started and not running.done() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    if not server.started:
        server.should_exit = True
        await running  # uvicorn logged why
        return 1
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    print(f"{READY_LINE} http://{host}:{port} (docs at /docs)", flush=True)
    return await running


async def _serve(server: uvicorn.Server) -> int:
    """``server.serve()``; 1 when it gave up starting (uvicorn then calls ``sys.exit``)."""
    try:
        await server.serve()
    except SystemExit:
        return 1
    return 0


def main() -> None:
    logs.configure("text")
    try:
        settings = GatewaySettings.from_env()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    else:
        logs.configure(settings.log_format)
        runtime.start(settings, serve_metrics=False)  # the SDK core's logs as ours
        # uvicorn re-raises the signal that stopped it once it has shut down; with these
        # handlers in place that is a no-op, and the process can leave with its own code.
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, lambda *_: None)
        code = asyncio.run(serve(settings))
    # The Temporal client's runtime can abort interpreter finalization (docs/decisions.md).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
