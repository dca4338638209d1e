"""What every verb's grammar shares: the parser class, the common options (``--json``,
``--timeout``), the account argument and the argument types."""

from __future__ import annotations

import argparse
from typing import NoReturn

from starter.errors import ExitCode

DEFAULT_TIMEOUT = 30.0


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one ``error: ...`` line, like every other failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def add_common_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--json and --timeout, accepted before or after the verb (the verb's copy only sets them
    when given, so it never overrides a value given before the verb)."""
    parser.add_argument("--json", action="store_true",
                        default=False if defaults else argparse.SUPPRESS,
                        help="print one JSON object instead of text (errors too, on stdout)")
    parser.add_argument("--timeout", type=positive_seconds, metavar="SECONDS",
                        default=DEFAULT_TIMEOUT if defaults else argparse.SUPPRESS,
                        help=f"give up on Temporal after this long (default {DEFAULT_TIMEOUT:g})")


def add_verb(subparsers: argparse._SubParsersAction, name: str, help: str,
             epilog: str) -> argparse.ArgumentParser:
    """A verb's parser, with the common options and its examples in the epilog."""
    parser = subparsers.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                                   epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, defaults=False)
    return parser


def account_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("account_id", metavar="ACCOUNT", help="account id: 1-64 of A-Z a-z 0-9 _ . : -")


def wait_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True, help=help)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 86_400:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    return seconds
