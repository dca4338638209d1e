"""``billing check``: reconcile the event log with the accounts table and the running workflows.

The work is ``operations.reconcile``; this verb reads the settings, connects, prints the report,
and answers with an exit code: 0 everything reconciles, 1 findings, 2 usage or configuration
(DATABASE_URL unset, the database not migrated), 6 Postgres or Temporal unavailable.
"""

from __future__ import annotations

import argparse

from config import Settings
from operations.reconcile import reconcile
from starter import output
from starter.accounts import Accounts
from starter.errors import ExitCode
from starter.history import event_log_errors
from starter.output import Output
from starter.verbs import database_url


async def check(args: argparse.Namespace, out: Output) -> ExitCode:
    """Reconcile every account (or ``--account`` ones); with ``--no-workflows``, only the
    database is read; with ``--repair``, open accounts without a running workflow get it back.
    Each state query is bounded by ``--timeout``."""
    settings = Settings.from_env()
    url = database_url(settings)
    accounts = None if args.no_workflows else await Accounts.connect(settings, args.timeout)
    with event_log_errors(no_log=ExitCode.USAGE):
        report = await reconcile(url, temporal_client=accounts.client if accounts else None,
                                 account_ids=args.accounts, repair=args.repair)
    out.result(*output.check_report(report))
    return ExitCode.OK if report.ok else ExitCode.FINDINGS
