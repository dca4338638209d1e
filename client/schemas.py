"""JSON Schemas of the account workflow's wire interface, generated from the models.

One file per message: the start input, each signal's and update's argument, each answer, the
``state`` query's answer, and each event; ``index.json`` says which message uses which file and
which error types carry which details. The committed copy lives in ``schemas/``;
``tests/unit/test_schemas.py`` fails when it drifts from the models.

    python -m starter schema --out schemas/           # write (or: python -m client.schemas)
    python -m starter schema --out schemas/ --check   # exit 1 and list what differs
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from domain.commands import AddFunds, Charge, CloseAccount, OpenAccount, RefundCharge
from domain.events import (
    AccountClosed,
    AccountCreated,
    BalancePaidOut,
    ChargeApplied,
    ChargeDeclined,
    CommandRejected,
    CreditNoteIssued,
    FundsAdded,
    InvoiceDrafted,
    InvoiceFinalized,
    RefundApplied,
)
from workflows import interface as wire

DIALECT = "https://json-schema.org/draft/2020-12/schema"
GENERATED_BY = "Generated from the models by `python -m starter schema --out schemas/`; do not edit."
INDEX = "index.json"
EVENTS = {
    next(f.default for f in fields(event) if f.name == "type"): event
    for event in (AccountCreated, FundsAdded, ChargeApplied, ChargeDeclined, CommandRejected, AccountClosed,
                  RefundApplied, InvoiceDrafted, InvoiceFinalized, CreditNoteIssued, BalancePaidOut)
}
"""Each event class, by its type (its name in the log)."""
ERRORS = {
    wire.INVALID_ACCOUNT: ("a start input that is not valid fails the run", None),
    wire.INVALID_COMMAND: ("an update whose argument is malformed or whose name is unknown;"
                           " nothing is recorded", None),
    wire.INSUFFICIENT_FUNDS: ("an update charge that would go below -overdraft_limit;"
                              " recorded as CHARGE_DECLINED", "command_outcome.json"),
    wire.ACCOUNT_HAS_BALANCE: ("a close update of an account whose balance is not zero, without"
                               " payout; recorded as COMMAND_REJECTED", "command_outcome.json"),
    wire.COMMAND_REJECTED: ("an update on a closed or missing account, past the balance limit, or"
                            " a refund of an unknown charge or of more than is left of it;"
                            " recorded as COMMAND_REJECTED", "command_outcome.json"),
}


def _argument(model: type[BaseModel]) -> Callable[[], dict[str, Any]]:
    return lambda: model.model_json_schema(mode="validation")


def _answer(model: type[BaseModel]) -> Callable[[], dict[str, Any]]:
    return lambda: _every_field_present(model.model_json_schema(mode="serialization"))


def _event(event: type) -> Callable[[], dict[str, Any]]:
    return lambda: _every_field_present(TypeAdapter(event).json_schema(mode="serialization"))


def _every_field_present(schema: dict[str, Any]) -> dict[str, Any]:
    """Answers and events are written with every field, defaults included, so a reader may
    rely on each one; pydantic lists only the fields without a default as required."""
    for part in (schema, *schema.get("$defs", {}).values()):
        if "properties" in part:
            part["required"] = sorted(part["properties"])
    return schema


def _start() -> dict[str, Any]:
    """The caller's start input. ``snapshot`` is left out: only continue-as-new sets it, with
    the workflow's private state. The account fields take ``OpenAccount``'s constraints, which
    the run enforces (``InvalidAccount``) although the input model declares plain types."""
    schema = wire.AccountWorkflowInput.model_json_schema(mode="validation")
    del schema["properties"]["snapshot"]
    schema.pop("$defs", None)  # only the snapshot used them
    opening = OpenAccount.model_json_schema(mode="validation")["properties"]
    for name in ("account_id", "currency", "overdraft_limit"):
        schema["properties"][name] = opening[name]
    # Opening needs the currency; reviving (signal- or update-with-start) only the account id.
    schema["required"] = ["account_id"]
    schema["if"] = {"properties": {"revive": {"const": True}}, "required": ["revive"]}
    schema["else"] = {"required": ["currency"]}
    schema["description"] = ("Start input of the account workflow: ``currency`` is required unless"
                             " ``revive`` is true. (``snapshot``, which only continue-as-new sets,"
                             " is not part of a caller's input.)")
    return schema


def _close() -> dict[str, Any]:
    """``close`` may come without a command id (the workflow makes one), or without argument."""
    schema = CloseAccount.model_json_schema(mode="validation")
    del schema["required"]  # command_id was the only required field
    schema["description"] += (" The argument may be left out, and so may ``command_id``: the"
                              " workflow then makes one.")
    return schema


def _refund() -> dict[str, Any]:
    """``facts`` is the workflow's to fill in (from the log); a sender that sets it is refused."""
    schema = RefundCharge.model_json_schema(mode="validation")
    del schema["properties"]["facts"]
    schema.pop("$defs", None)  # only facts used them
    return schema


def _post_batch() -> dict[str, Any]:
    """In a batch, ``kind`` says which command an item is, so it is required there."""
    schema = wire.PostBatch.model_json_schema(mode="validation")
    for item in schema["$defs"].values():
        item["required"] = sorted({*item.get("required", []), "kind"})
    return schema


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "start.json": _start,
    "add_funds.json": _argument(AddFunds),
    "charge.json": _argument(Charge),
    "close.json": _close,
    "close_update.json": _argument(CloseAccount),
    "refund.json": _refund,
    "post_batch.json": _post_batch,
    "command_outcome.json": _answer(wire.CommandOutcome),
    "batch_outcome.json": _answer(wire.BatchOutcome),
    "open_outcome.json": _answer(wire.OpenOutcome),
    "period_closed.json": _answer(wire.PeriodClosed),
    "account_view.json": _answer(wire.AccountView),
    **{f"events/{kind}.json": _event(event) for kind, event in EVENTS.items()},
}
"""Every schema file, by its path under the output folder."""


def index() -> dict[str, Any]:
    """Which message uses which schema file; ``null`` where a message takes no argument."""
    return {
        "$comment": GENERATED_BY,
        "workflow_type": wire.WORKFLOW_TYPE,
        "workflow_id": wire.workflow_id("{account_id}"),
        "start": "start.json",
        "signals": {name: f"{name}.json" for name in wire.SIGNALS},
        "updates": {
            wire.ADD_FUNDS: {"argument": "add_funds.json", "answer": "command_outcome.json"},
            wire.CHARGE: {"argument": "charge.json", "answer": "command_outcome.json"},
            wire.POST_BATCH: {"argument": "post_batch.json", "answer": "batch_outcome.json"},
            wire.REFUND: {"argument": "refund.json", "answer": "command_outcome.json"},
            wire.CLOSE: {"argument": "close_update.json", "answer": "command_outcome.json"},
            wire.CLOSE_PERIOD: {"argument": None, "answer": "period_closed.json"},
            wire.OPENED: {"argument": None, "answer": "open_outcome.json"},
        },
        "queries": {wire.STATE: {"argument": None, "answer": "account_view.json"}},
        "errors": {kind: {"when": when, "details": [details] if details else []}
                   for kind, (when, details) in ERRORS.items()},
        "events": {
            "$comment": "account_events.payload stores an event without its type and command_id,"
                        " which have columns of their own",
            **{kind: f"events/{kind}.json" for kind in EVENTS},
        },
    }


def render() -> dict[str, str]:
    """Every file's text, by path: sorted keys and a final newline, so output is stable."""
    documents = {path: {"$schema": DIALECT, **make()} for path, make in SCHEMAS.items()}
    documents[INDEX] = index()
    return {path: json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            for path, doc in sorted(documents.items())}


def write_schemas(out_dir: Path | str) -> list[Path]:
    """Write every schema and the index under ``out_dir``; remove the files the previous index
    listed that are no longer generated. Returns the paths written."""
    out = Path(out_dir)
    texts = render()
    for stale in _listed(out) - set(texts):
        (out / stale).unlink(missing_ok=True)
    written = []
    for path, text in texts.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def drift(out_dir: Path | str) -> list[str]:
    """What differs between ``out_dir`` and the models, one line per file; empty if nothing."""
    out = Path(out_dir)
    texts = render()
    present = {p.relative_to(out).as_posix() for p in out.rglob("*.json")} if out.is_dir() else set()
    lines = [f"missing: {path}" for path in sorted(set(texts) - present)]
    lines += [f"not generated any more: {path}" for path in sorted(present - set(texts))]
    lines += [f"differs: {path}" for path in sorted(set(texts) & present)
              if (out / path).read_text(encoding="utf-8") != texts[path]]
    return lines


def _listed(out: Path) -> set[str]:
    """The files an earlier run's index named (the index itself included)."""
    try:
        previous = json.loads((out / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    files = {INDEX, previous.get("start")}
    for section in ("signals", "events"):
        files |= {v for v in previous.get(section, {}).values() if isinstance(v, str)}
    for section in ("updates", "queries"):
        files |= {v for message in previous.get(section, {}).values() for v in message.values()}
    return {f for f in files if isinstance(f, str) and f.endswith(".json") and ".." not in f}


def main(argv: Sequence[str] | None = None) -> int:
    """``--out DIR`` writes the schemas; with ``--check`` it only compares (exit 1 on drift)."""
    parser = argparse.ArgumentParser(prog="billing schema", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="schemas", help="output folder (default: schemas)")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if it differs")
    args = parser.parse_args(argv)
    if args.check:
        lines = drift(args.out)
        print("\n".join(lines) if lines else f"{args.out}: up to date")
        return 1 if lines else 0
    written = write_schemas(args.out)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
