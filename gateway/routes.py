"""The routes: open, fund, charge, close, inspect an account, and read its event log.

Funds, charges and closes are commands with an idempotency key: the ``Idempotency-Key``
header is the command id (a fresh uuid4 when missing), and every answer, errors included,
carries it back. A repeat of the same command answers what the first one did, with
``Idempotent-Replayed: true``; the same key with another command is a 422.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response, status

from activities.rows import StoredEvent
from client import BillingError, new_command_id
from domain.commands import AccountId, CloseAccount, describe_reuse
from gateway import problems
from gateway.models import ClosedAccount, CloseRequest, MoneyRequest, OpenAccountRequest
from gateway.problems import (
    ACCOUNT_CLOSED,
    ACCOUNT_EXISTS,
    ACCOUNT_HAS_BALANCE,
    ACCOUNT_NOT_FOUND,
    COMMAND_REJECTED,
    CURRENCY_MISMATCH,
    DATABASE_UNAVAILABLE,
    INSUFFICIENT_FUNDS,
    KEY_REUSED,
    TEMPORAL_UNAVAILABLE,
    ApiProblem,
)
from gateway.upstream import Upstream
from starter.history import History
from workflows.interface import ADD_FUNDS, CHARGE, AccountView, CommandOutcome

router = APIRouter()

AccountPath = Annotated[AccountId, Path(description="The account's id", examples=["acme"])]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$",
    description="The command's id: a repeat with the same key and body is answered as the first "
                "time and changes nothing. Scoped to the account. Missing: a uuid4 is made and "
                "returned")]
COMMAND_HEADERS = {"Idempotency-Key": {"description": "The command's id", "schema": {"type": "string"}},
                   "Idempotent-Replayed": {"description": "`true` when this answers a repeat",
                                           "schema": {"type": "string", "enum": ["true"]}}}


@router.post("/accounts", status_code=status.HTTP_201_CREATED, response_model=AccountView,
             responses=problems.responses(ACCOUNT_EXISTS, TEMPORAL_UNAVAILABLE))
async def open_account(body: OpenAccountRequest, request: Request, response: Response) -> AccountView:
    """Open an account. Opening one that exists is a 409 (the account id is its own key)."""
    with answering(body.account_id):
        accounts = await _upstream(request).accounts()
        outcome = await accounts.open(body.account_id, body.currency, body.overdraft_limit,
                                      billing_period=body.billing_period)
    response.headers["Location"] = f"/accounts/{body.account_id}"
    return outcome.account


@router.get("/accounts/{account_id}", response_model=AccountView,
            responses=problems.responses(ACCOUNT_NOT_FOUND, TEMPORAL_UNAVAILABLE))
async def get_account(account_id: AccountPath, request: Request) -> AccountView:
    """The account as its workflow sees it: balance, version, status, pending commands."""
    with answering(account_id):
        return await (await _upstream(request).accounts()).state(account_id)


@router.get("/accounts/{account_id}/events", response_model=History,
            responses=problems.responses(ACCOUNT_NOT_FOUND, DATABASE_UNAVAILABLE))
async def get_events(account_id: AccountPath, request: Request) -> History:
    """Every event of the account, in version order, from the event log in Postgres."""
    return await _upstream(request).history(account_id)


MONEY_RESPONSES = {200: {"headers": COMMAND_HEADERS}, **problems.responses(
    INSUFFICIENT_FUNDS, ACCOUNT_NOT_FOUND, ACCOUNT_CLOSED, CURRENCY_MISMATCH, COMMAND_REJECTED,
    KEY_REUSED, TEMPORAL_UNAVAILABLE)}


@router.post("/accounts/{account_id}/funds", response_model=CommandOutcome, responses=MONEY_RESPONSES)
async def add_funds(account_id: AccountPath, body: MoneyRequest, request: Request, response: Response,
                    idempotency_key: IdempotencyKey = None) -> CommandOutcome:
    """Credit the account `amount` minor units."""
    return await _money(ADD_FUNDS, account_id, body, request, response, idempotency_key)


@router.post("/accounts/{account_id}/charges", response_model=CommandOutcome, responses={
    **MONEY_RESPONSES, **problems.responses(INSUFFICIENT_FUNDS)})
async def charge(account_id: AccountPath, body: MoneyRequest, request: Request, response: Response,
                 idempotency_key: IdempotencyKey = None) -> CommandOutcome:
    """Debit the account `amount` minor units; 402 if that would pass its overdraft limit."""
    return await _money(CHARGE, account_id, body, request, response, idempotency_key)


@router.post("/accounts/{account_id}/close", response_model=ClosedAccount, responses={
    200: {"headers": COMMAND_HEADERS}, **problems.responses(
        ACCOUNT_NOT_FOUND, ACCOUNT_CLOSED, ACCOUNT_HAS_BALANCE, COMMAND_REJECTED, KEY_REUSED,
        TEMPORAL_UNAVAILABLE, DATABASE_UNAVAILABLE)})
async def close_account(account_id: AccountPath, request: Request, response: Response,
                        body: CloseRequest | None = None,
                        idempotency_key: IdempotencyKey = None) -> ClosedAccount:
    """Close the account, after every command it received before; later ones are a 409. One
    with a balance is a 409 too, unless ``payout`` (with a ``reason``) pays it out first.
    Answers once the close is in the event log."""
    key = idempotency_key or new_command_id()
    command = CloseAccount(command_id=key, reason=body.reason if body else "",
                           payout=body.payout if body else False)
    upstream = _upstream(request)
    with answering(account_id, key, response):
        recorded = await upstream.recorded(account_id, key)
        if recorded is None:
            await (await upstream.accounts()).close(account_id, command_id=key, reason=command.reason,
                                                    payout=command.payout)
            recorded = await upstream.wait_recorded(account_id, key)
        else:
            response.headers["Idempotent-Replayed"] = "true"
        return _closed(account_id, command, recorded)


async def _money(kind: str, account_id: str, body: MoneyRequest, request: Request, response: Response,
                 idempotency_key: str | None) -> CommandOutcome:
    """Send a fund or charge (coalesced with concurrent ones to the same account); a repeat is
    answered as the first time, from the outcome the account keeps for the key. On a replay,
    ``balance`` is today's balance: that is what the account answers a duplicate with."""
    key = idempotency_key or new_command_id()
    with answering(account_id, key, response):
        accounts = await _upstream(request).accounts()
        send = accounts.add_funds if kind == ADD_FUNDS else accounts.charge
        outcome = await send(account_id, body.amount, command_id=key, description=body.description,
                             currency=body.currency)
        assert outcome is not None  # we wait for it
        return as_first_answered(outcome, account_id, response)


def as_first_answered(outcome: CommandOutcome, account_id: str, response: Response) -> CommandOutcome:
    """A command's outcome as the first request under its key was answered: a duplicate of an
    applied command is ``applied`` again (``Idempotent-Replayed: true``), of a refused one the
    same problem."""
    if outcome.status != "duplicate" or outcome.original_status is None:
        return outcome  # applied; or a duplicate of a key older than the log's outcomes
    response.headers["Idempotent-Replayed"] = "true"
    if outcome.original_status != "applied":
        raise problems.refused(outcome, outcome.original_status, account_id)
    return outcome.model_copy(update={"status": "applied", "original_status": None})


def _closed(account_id: str, command: CloseAccount, event: StoredEvent) -> ClosedAccount:
    """The answer to a close, from the event that recorded its key."""
    first, again = event.command_fingerprint, command.fingerprint()
    extensions: dict[str, Any] = {"account_id": account_id, "command_id": command.command_id,
                                  "version": event.version}
    if first is not None and first != again:
        raise ApiProblem(KEY_REUSED, describe_reuse(first, again), extensions)
    if event.event_type == "ACCOUNT_CLOSED":
        return ClosedAccount(account_id=account_id, command_id=command.command_id, version=event.version,
                             reason=event.payload.get("reason", ""))
    reason = str(event.payload.get("reason", ""))
    if event.event_type == "COMMAND_REJECTED":
        raise ApiProblem(problems.rejection(reason), reason, extensions)
    raise ApiProblem(KEY_REUSED, f"the key was used for a {event.event_type} event", extensions)


@contextmanager
def answering(account_id: str, key: str | None = None, response: Response | None = None) -> Iterator[None]:
    """Turn the client's errors into problems; with ``key``, every answer names it."""
    headers = {"Idempotency-Key": key} if key else {}
    if response is not None:
        response.headers.update(headers)
    try:
        yield
    except BillingError as error:
        problem = problems.from_billing_error(error, account_id)
        raise _with_headers(problem, headers, response) from error
    except ApiProblem as problem:
        raise _with_headers(problem, headers, response) from None


def _with_headers(problem: ApiProblem, headers: dict[str, str], response: Response | None) -> ApiProblem:
    replayed = response.headers.get("Idempotent-Replayed") if response is not None else None
    problem.headers.update(headers)
    if replayed:
        problem.headers["Idempotent-Replayed"] = replayed
    return problem


def _upstream(request: Request) -> Upstream:
    upstream: Upstream = request.app.state.upstream
    return upstream
