"""Verbs that regenerate data from the log: ``replay`` (in full, of one projection, of one
account, or ``--verify`` that writes nothing) and ``snapshots rebuild``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError

from config import ConfigError, Settings, connect_temporal
from operations.reconcile import reconcile
from operations.replay.account import replay_account
from operations.replay.hosted import run_replay
from operations.replay.scan import CorruptLog
from operations.replay.snapshots import rebuild_all
from projections import REPLAYED, by_name
from starter import output
from starter.errors import CliError, ExitCode
from starter.history import event_log_errors
from starter.output import Output
from starter.reading import reading
from starter.verbs import database_url
from workflows.replay import ReplayProgress


def owner_url() -> str:
    """The tables' owner's URL (BILLING_MIGRATION_URL, else DATABASE_URL if that is the owner)."""
    settings = Settings.from_env()
    if settings.migration_url:
        return settings.migration_url
    try:
        return settings.require_database_url()
    except ConfigError as error:
        raise CliError(f"{error}; a replay needs the tables' owner: set BILLING_MIGRATION_URL",
                       ExitCode.USAGE) from None


async def replay(args: argparse.Namespace, out: Output) -> int:
    if args.verify:
        return await _verify(out)
    if args.account:
        return await _replay_account(args.account, out)
    names = args.projections or [projection.name for projection in REPLAYED]
    return await _replay(names, out)


async def rebuild_projection(args: argparse.Namespace, out: Output) -> int:
    return await _replay([args.name], out)


async def _replay(names: list[str], out: Output) -> int:
    try:
        [by_name(name) for name in names]
    except KeyError as error:
        raise CliError(str(error.args[0]), ExitCode.USAGE) from None
    client = await connect_temporal(Settings.from_env())
    with _bar(quiet=out.as_json) as (progress, follow):
        try:
            result = await run_replay(client, owner_url(), names, follow=follow)
        except WorkflowFailureError as error:
            cause = error.cause.cause if isinstance(error.cause, ActivityError) else error.cause
            raise CliError(f"the replay failed, nothing was swapped in: {cause}") from None
        progress.stop()
    out.result(result.model_dump(mode="json"),
               f"replayed {', '.join(result.projections)}: {result.events:,} events in "
               f"{result.seconds:.1f} s ({result.events / max(result.seconds, 1e-9):,.0f}/s), "
               "swapped in")
    return ExitCode.OK


class _bar:
    """A progress bar fed by the replay's heartbeats: events, events/s, time left."""

    def __init__(self, *, quiet: bool) -> None:
        self._progress = Progress(TextColumn("{task.description:<12}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                  TimeRemainingColumn(), console=Console(stderr=True), disable=quiet)
        self._task = self._progress.add_task("replaying", total=None, rate="")
        self._started = time.monotonic()

    def __enter__(self) -> tuple[Progress, Any]:
        self._progress.start()
        return self._progress, self._follow

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _follow(self, heartbeat: ReplayProgress) -> None:
        rate = heartbeat.events_done / max(time.monotonic() - self._started, 1e-3)
        self._progress.update(self._task, description=heartbeat.phase, rate=f"{rate:,.0f} events/s",
                              total=heartbeat.events_total, completed=heartbeat.events_done)


async def _replay_account(account_id: str, out: Output) -> int:
    async with reading(owner_url()) as conn:
        try:
            done = await replay_account(conn, account_id)
        except CorruptLog as error:
            raise CliError(f"the log cannot be replayed, nothing was written: {error}") from None
    if done is None:
        raise CliError(f"account {account_id} not found in the event log", ExitCode.NOT_FOUND)
    out.result(done.__dict__, f"account {account_id}: replayed to version {done.version} (from "
                              f"a snapshot at {done.snapshot_version} and {done.events_read} events), "
                              f"{done.statement_rows} statement rows")
    return ExitCode.OK


async def _verify(out: Output) -> int:
    with event_log_errors(no_log=ExitCode.USAGE):
        report = await reconcile(database_url())
    out.result(*output.check_report(report))
    return ExitCode.OK if report.ok else ExitCode.FINDINGS


async def rebuild_snapshots(args: argparse.Namespace, out: Output) -> int:
    async with reading(owner_url()) as conn:
        done = await rebuild_all(conn)
    out.result(done.__dict__, f"snapshots rebuilt: {done.accounts} accounts, {done.events} events "
                              f"folded, {done.dropped} of another schema dropped")
    return ExitCode.OK
