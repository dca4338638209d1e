"""The committed JSON Schemas (``schemas/``) against the models, and the vectors against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest

from client.schemas import INDEX, main, write_schemas
from domain.events import Event
from domain.upcasting import SCHEMA_VERSIONS
from tests.vectors import argument_schema, load, validator, vector_files

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schemas"
FIX = "python -m starter schema --out schemas/"


def tree(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_committed_schemas_match_the_models(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    fresh, committed = tree(tmp_path), tree(COMMITTED)
    differing = sorted(path for path in fresh.keys() | committed.keys()
                       if fresh.get(path) != committed.get(path))
    assert differing == [], f"schemas/ has drifted from the models in {differing}; run `{FIX}`"


def test_output_is_stable_and_stale_files_go(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    first = tree(tmp_path)
    index = json.loads((tmp_path / INDEX).read_text())
    index["signals"]["refund"] = "refund.json"  # as if an earlier version had that signal
    (tmp_path / INDEX).write_text(json.dumps(index))
    (tmp_path / "refund.json").write_text("{}")
    (tmp_path / "notes.json").write_text("{}")  # not the generator's: left alone
    write_schemas(tmp_path)
    assert tree(tmp_path) == {**first, "notes.json": "{}"}


def test_check_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "charge.json").write_text("{}\n")
    (tmp_path / "events" / "FUND_ADDED.json").unlink()
    assert main(["--out", str(tmp_path), "--check"]) == 1
    assert capsys.readouterr().out.splitlines()[-2:] == ["missing: events/FUND_ADDED.json",
                                                         "differs: charge.json"]


def payload_steps() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path.stem}-{number}", step)
            for path in vector_files()
            for number, step in enumerate(load(path, "acme")["steps"], start=1) if "payload" in step]


@pytest.mark.parametrize(("name", "step"), payload_steps(), ids=[name for name, _ in payload_steps()])
def test_vector_payloads_fit_the_schemas_unless_meant_not_to(name: str, step: dict[str, Any]) -> None:
    """A payload breaks its schema exactly when the vector says it is malformed: an update
    refused with ``InvalidCommand``, or a step marked ``malformed``."""
    refused = step.get("expect", {}).get("error", {}).get("type") == "InvalidCommand"
    meant_bad = refused or step.get("malformed", False)
    schema = argument_schema(step)
    fits = schema is not None and validator(schema).is_valid(step["payload"])
    assert fits != meant_bad, f"{name}: {step['about']}: schema {schema} says fits={fits}"



def with_start_steps() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path.stem}-{number}", step)
            for path in vector_files()
            for number, step in enumerate(load(path, "acme")["steps"], start=1)
            if step["kind"].endswith("_with_start")]


@pytest.mark.parametrize(("name", "step"), with_start_steps(), ids=[name for name, _ in with_start_steps()])
def test_with_start_steps_revive_the_account_workflow_validly(name: str, step: dict[str, Any]) -> None:
    """Update- and signal-with-start name the workflow and a start input that fits ``start.json``
    (reviving: ``{"account_id": ..., "revive": true}``)."""
    start = step["start"]
    assert start["name"] == "AccountWorkflow", f"{name}: {step['about']}"
    problems = [error.message for error in validator("start.json").iter_errors(start["payload"])]
    assert problems == [], f"{name}: {step['about']}: {problems}"


def test_every_event_type_has_a_schema_version():
    """An event type without one cannot be appended (the store writes its version)."""
    types = {kind.__dataclass_fields__["type"].default for kind in get_args(get_args(Event)[0])}
    assert types == set(SCHEMA_VERSIONS)


@pytest.mark.parametrize(("start", "fits"), [
    ({"account_id": "a", "currency": "USD"}, True),
    ({"account_id": "a", "revive": True}, True),
    ({"account_id": "a", "currency": "USD", "revive": True}, True),
    ({"account_id": "a"}, False),
    ({"account_id": "a", "revive": False}, False),
    ({"currency": "USD", "revive": True}, False),
], ids=["open", "revive", "revive-with-currency", "no-currency", "no-currency-not-reviving", "no-id"])
def test_the_start_schema_needs_a_currency_unless_reviving(start: dict[str, Any], fits: bool) -> None:
    assert validator("start.json").is_valid(start) is fits
