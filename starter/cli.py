"""``billing`` / ``python -m starter``: the command line of the billing service.

This module parses the arguments (grammar in ``starter.arguments``) and dispatches to a verb
(``starter.verbs``, ``starter.invoicing``, ``starter.demo``, ``starter.check``, or ``devstack.up``
for ``up``). ``run(argv)`` does the work and returns the exit code, for tests; ``main()`` is the
process entry point and ends with ``os._exit``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Any, NoReturn

from starter.arguments import build_parser
from starter.errors import CliError, ExitCode
from starter.operations_grammar import PASS_THROUGH

if TYPE_CHECKING:
    from starter.output import Output

# Each verb's module is imported only when the verb runs, so `--help` and usage errors answer
# without loading Temporal, psycopg and pydantic.
VERBS = {
    "open": "starter.verbs:open_account", "fund": "starter.verbs:fund",
    "charge": "starter.verbs:charge", "balance": "starter.verbs:balance",
    "history": "starter.verbs:history", "close": "starter.verbs:close", "demo": "starter.demo:run_demo",
    "check": "starter.check:check", "replay": "starter.replay:replay",
    "snapshots rebuild": "starter.replay:rebuild_snapshots",
    "projections status": "starter.reading:projections_status",
    "projections rebuild": "starter.replay:rebuild_projection",
    "statement": "starter.reading:statement", "config": "starter.reading:show_config",
    "refund": "starter.invoicing:refund", "close-period": "starter.invoicing:close_period",
    "invoices": "starter.invoicing:invoices", "invoice": "starter.invoicing:invoice",
}


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; never exits the process."""
    try:
        args, rest = parse(argv)
    except SystemExit as stop:  # --help, or a usage error already printed
        return stop.code if isinstance(stop.code, int) else ExitCode.USAGE
    if args.verb == "up":
        return _up(rest)
    if args.verb in PASS_THROUGH:
        return _pass_through(args.verb, rest)
    return _run_verb(args)


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Parse ``argv``; only ``up`` may have arguments left over (they are its own)."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.verb != "up" and args.verb not in PASS_THROUGH:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args, rest


def _run_verb(args: argparse.Namespace) -> int:
    from starter.output import Output

    out = Output(args.json, sys.stdout, sys.stderr)
    _configure_logging()
    name = f"{args.verb} {args.action}" if getattr(args, "action", None) else args.verb
    try:
        code = asyncio.run(verb(name)(args, out))
    except CliError as error:
        out.error(error)
        return error.code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - one line for the user; the traceback on request
        return _unexpected(error, out)
    return ExitCode.OK if code is None else code


def _configure_logging() -> None:
    """Warnings and errors from the libraries on stderr, as BILLING_LOG_FORMAT says (text: as
    Python prints them by default). Settings that do not parse are the verb's to report."""
    import logging

    from config import ConfigError, Settings
    from telemetry import logs, runtime

    with contextlib.suppress(ConfigError):
        settings = Settings.from_env()
        if settings.log_format == "json":
            logs.configure("json", level=logging.WARNING)
            runtime.start(settings, serve_metrics=False)  # the SDK core's warnings as JSON too


def verb(name: str) -> Callable[[argparse.Namespace, Output], Coroutine[Any, Any, int | None]]:
    """The coroutine function that does the work of verb ``name``; it returns nothing when
    done, or an exit code that is not an error (`check`'s findings)."""
    module, function = VERBS[name].split(":")
    return getattr(import_module(module), function)


def _pass_through(name: str, rest: list[str]) -> int:
    """`billing schema ...` and `billing kafka tail ...` belong to modules with a parser of
    their own; imported only when asked for."""
    if name == "kafka":
        if not rest or rest[0] != "tail":
            print("error: the kafka verb has one action: `billing kafka tail [--help]`",
                  file=sys.stderr)
            return ExitCode.USAGE
        rest = rest[1:]
    module, function = PASS_THROUGH[name].split(":")
    return int(getattr(import_module(module), function)(rest) or 0)


def _up(rest: list[str]) -> int:
    """`billing up` belongs to ``devstack.up``; imported only when asked for."""
    from devstack import up

    return int(up.main(rest) or 0)


def _unexpected(error: Exception, out: Output) -> int:
    if os.environ.get("BILLING_DEBUG"):
        traceback.print_exc()
    out.error(CliError(f"unexpected {type(error).__name__}: {error}"
                       " (BILLING_DEBUG=1 shows the traceback)"))
    return ExitCode.FAILURE


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Process entry point. Exits with ``os._exit``: the Temporal client's native runtime can
    abort a normal interpreter shutdown (exit 134, temporalio/sdk-python#300), so once the
    command is done and the output flushed, the process ends without finalization."""
    code = run(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))
