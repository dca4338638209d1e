"""The account's memory of its most recent command ids, and what each came to.

A repeated command id must get the first answer again, so the state remembers the last
``COMMANDS_KEPT`` ids; older repeats are caught by the log's UNIQUE(account_id, command_id).

``CommandMemory`` reads as an immutable mapping of command id to the version that recorded it,
yet remembering one more id costs O(1): memories that extend one another share one
insertion-ordered dict, and each sees only the entries inside its own window. Only the newest
memory of a chain extends the dict in place; any other copies its window first. Without this,
every event would copy 2,000 entries (folding a long log ran at ~5k events/s).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal, NamedTuple

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

COMMANDS_KEPT = 2_000
_COMPACT_AT = 4 * COMMANDS_KEPT
"""Entries a shared dict may reach before the next memory starts a new one with its window."""
_new_memory = object.__new__


@dataclass(frozen=True, slots=True)
class PriorOutcome:
    """What a remembered command came to, when that was not simply "applied". ``unknown``
    marks ids learned from the log's unique key, whose outcome the state never saw."""

    status: Literal["declined", "rejected", "unknown"]
    reason: str = ""


class Recorded(NamedTuple):
    """Where a command was recorded, what it came to (``prior`` None: applied), and what it
    asked (its ``fingerprint``; None when recorded before fingerprints were kept)."""

    version: int
    prior: PriorOutcome | None = None
    fingerprint: str | None = None


class _Shared:
    """The dict a chain of memories shares: id -> (sequence number, Recorded), numbered 0, 1,
    2, ... in insertion order; entries are added, never changed or removed."""

    __slots__ = ("end", "entries")

    def __init__(self, items: list[tuple[str, Recorded]]) -> None:
        self.entries = {command_id: (sequence, recorded)
                        for sequence, (command_id, recorded) in enumerate(items)}
        self.end = len(items)  # the next entry's sequence number


class CommandMemory(Mapping[str, int]):
    """The last ``COMMANDS_KEPT`` command ids, oldest first, each with the version that
    recorded it; immutable."""

    __slots__ = ("_end", "_shared")

    def __init__(self, entries: Iterable[tuple[str, Recorded]] = ()) -> None:
        latest: dict[str, Recorded] = {}
        for command_id, recorded in entries:
            latest.pop(command_id, None)  # a repeated id counts as its newest
            latest[command_id] = recorded
        self._shared = _Shared(list(latest.items())[-COMMANDS_KEPT:])
        self._end = self._shared.end

    def recorded(self, command_id: str | None) -> Recorded | None:
        """Where ``command_id`` was recorded and what it came to, if it is remembered."""
        entry = self._shared.entries.get(command_id) if command_id is not None else None
        if entry is None or not self._end - COMMANDS_KEPT <= entry[0] < self._end:
            return None
        return entry[1]

    def remembering(self, command_id: str, recorded: Recorded) -> CommandMemory:
        """This memory plus ``command_id`` as its newest entry."""
        shared, end = self._shared, self._end
        # Not the empty memory: it is every new state's default, shared by all of them.
        if 0 < end == shared.end < _COMPACT_AT and command_id not in shared.entries:
            shared.entries[command_id] = (end, recorded)
            shared.end = end + 1
            extended: CommandMemory = _new_memory(CommandMemory)
            extended._shared, extended._end = shared, end + 1
            return extended
        # Extended already by another memory, the id is known, or the shared dict is full:
        # start a new one from this memory's window.
        kept = [entry for entry in self.entries() if entry[0] != command_id]
        return CommandMemory([*kept, (command_id, recorded)])

    def entries(self) -> Iterator[tuple[str, Recorded]]:
        """The remembered ids, oldest first, with where each was recorded and its outcome."""
        shared, start = self._shared, max(self._end - COMMANDS_KEPT, 0)
        # Entries are numbered in insertion order, so the window is one contiguous run: walk
        # to it from the newest end of the dict.
        newest_first = islice(reversed(shared.entries.items()), shared.end - self._end,
                              shared.end - start)
        for command_id, (_, recorded) in reversed(list(newest_first)):
            yield command_id, recorded

    def __getitem__(self, command_id: str) -> int:
        recorded = self.recorded(command_id)
        if recorded is None:
            raise KeyError(command_id)
        return recorded.version

    def __contains__(self, command_id: object) -> bool:
        entry = self._shared.entries.get(command_id) if isinstance(command_id, str) else None
        return entry is not None and self._end - COMMANDS_KEPT <= entry[0] < self._end

    def __iter__(self) -> Iterator[str]:
        return (command_id for command_id, _ in self.entries())

    def __len__(self) -> int:
        return min(self._end, COMMANDS_KEPT)  # every sequence number below _end is taken

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CommandMemory):
            return list(self.entries()) == list(other.entries())
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CommandMemory({dict(self)!r})"

    def outcomes(self) -> dict[str, PriorOutcome]:
        """The remembered ids that were not simply applied, with what they came to."""
        return {command_id: recorded.prior for command_id, recorded in self.entries()
                if recorded.prior is not None}

    def fingerprints(self) -> dict[str, str]:
        """The remembered ids whose fingerprint is known, with it."""
        return {command_id: recorded.fingerprint for command_id, recorded in self.entries()
                if recorded.fingerprint is not None}

    @classmethod
    def of(cls, versions: Mapping[str, int], outcomes: Mapping[str, PriorOutcome],
           fingerprints: Mapping[str, str]) -> CommandMemory:
        """The memory stored as ``{id: version}``, ``{id: outcome}`` and ``{id: fingerprint}``,
        oldest first."""
        return cls((command_id, Recorded(version, outcomes.get(command_id), fingerprints.get(command_id)))
                   for command_id, version in versions.items())

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """Read from ``{id: version}`` (``AccountState`` adds the outcomes), written back so."""
        versions = core_schema.dict_schema(core_schema.str_schema(), core_schema.int_schema())
        # An instance passes as it is in both modes: ``AccountState`` builds it, with the
        # outcomes and fingerprints, before its fields are validated (from JSON too).
        either = core_schema.union_schema([
            core_schema.is_instance_schema(cls),
            core_schema.no_info_after_validator_function(lambda ids: cls.of(ids, {}, {}), versions)])
        return core_schema.json_or_python_schema(
            json_schema=either, python_schema=either,
            serialization=core_schema.plain_serializer_function_ser_schema(dict))
