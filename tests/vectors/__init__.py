"""The shared test vectors, read in Python: loading, the matching rule, the schema of a step.

The Go and TypeScript services (``services/``) read the same ``*.json`` files with the same rule;
``README.md`` beside them describes the format. In short: every string's ``${account_id}`` is
replaced by a fresh account id; an expected result or error ``details`` matches when every field
it names is equal in the answer (objects recursively, arrays element by element and of the same
length); fields it leaves out are not checked.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE.parents[1] / "schemas"
PLACEHOLDER = "${account_id}"


def vector_files() -> list[Path]:
    """Every vector file, in name order (the order the services run them in)."""
    return sorted(HERE.glob("*.json"))


def fresh_account_id(runner: str, scenario: str) -> str:
    """An account id no earlier run used: the dev server and the log outlive one run."""
    return f"{runner}-{scenario}-{uuid.uuid4().hex[:10]}"


def load(path: Path, account_id: str) -> dict[str, Any]:
    """The vector at ``path`` with ``${account_id}`` replaced in every string."""
    return _substitute(json.loads(path.read_text(encoding="utf-8")), account_id)


def _substitute(value: Any, account_id: str) -> Any:
    if isinstance(value, str):
        return value.replace(PLACEHOLDER, account_id)
    if isinstance(value, list):
        return [_substitute(item, account_id) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, account_id) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Outcome:
    """What a step came to: a result (None for a signal or a start), or an error's type and its
    first detail."""

    result: Any = None
    error_type: str | None = None
    details: Any = None

    def describe(self) -> str:
        if self.error_type is not None:
            return f"error {self.error_type} {json.dumps(self.details, sort_keys=True)}"
        return json.dumps(self.result, sort_keys=True)


def mismatches(step: dict[str, Any], outcome: Outcome) -> list[str]:
    """Each way ``outcome`` differs from what ``step`` expects; empty when it matches."""
    expect = step.get("expect")
    if expect is None:
        return [f"an error {outcome.error_type}"] if outcome.error_type else []
    if "error" in expect:
        wanted = expect["error"]
        if outcome.error_type is None:
            return [f"expected error {wanted['type']}, got result {outcome.describe()}"]
        problems = [] if outcome.error_type == wanted["type"] else [
            f"error type: expected {wanted['type']}, got {outcome.error_type}"]
        if "details" in wanted:
            problems += differences(wanted["details"], outcome.details, "details")
        return problems
    if outcome.error_type is not None:
        return [f"expected a result, got {outcome.describe()}"]
    return differences(expect["result"], outcome.result, "result")


def differences(expected: Any, actual: Any, where: str) -> list[str]:
    """The vectors' matching rule: the fields ``expected`` names, recursively."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {json.dumps(actual)}"]
        return [problem for key, value in expected.items()
                for problem in (differences(value, actual[key], f"{where}.{key}") if key in actual
                                else [f"{where}.{key}: missing"])]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {len(expected)} items, got {json.dumps(actual)}"]
        return [problem for index, (want, got) in enumerate(zip(expected, actual, strict=True))
                for problem in differences(want, got, f"{where}[{index}]")]
    # bool is an int in Python: True must not match 1
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        return [f"{where}: expected {json.dumps(expected)}, got {json.dumps(actual)}"]
    return []


@cache
def schema_index() -> dict[str, Any]:
    return dict(json.loads((SCHEMAS / "index.json").read_text(encoding="utf-8")))


@cache
def validator(schema_file: str) -> Draft202012Validator:
    """A validator for one committed schema file (each is self-contained)."""
    return Draft202012Validator(json.loads((SCHEMAS / schema_file).read_text(encoding="utf-8")))


def argument_schema(step: dict[str, Any]) -> str | None:
    """The schema file of a step's payload; None for a message the interface does not have."""
    index = schema_index()
    if step["kind"] == "start":
        return str(index["start"])
    if step["kind"] in ("signal", "signal_with_start"):
        return index["signals"].get(step["name"])
    if step["kind"] in ("update", "update_with_start"):
        return (index["updates"].get(step["name"]) or {}).get("argument")
    return None


def answer_schema(step: dict[str, Any], outcome: Outcome) -> str | None:
    """The schema file of what came back: an answer, or an error's first detail."""
    index = schema_index()
    if outcome.error_type is not None:
        details = index["errors"].get(outcome.error_type, {}).get("details", [])
        return details[0] if details else None
    section = {"update": "updates", "update_with_start": "updates", "query": "queries"}.get(step["kind"])
    return index[section][step["name"]]["answer"] if section else None
