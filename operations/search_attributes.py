"""Register the account workflow's search attributes in a namespace, if they are missing.

The workflow upserts them (``workflows.visibility``); a namespace without them would fail its
workflow tasks, so the worker calls ``ensure_search_attributes`` before it serves. ``make run``
registers them when it starts the dev server, and the compose setup with a one-shot step.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError

from workflows.visibility import SEARCH_ATTRIBUTES, cli_type


class SearchAttributesMissing(RuntimeError):
    """They are missing and this client may not register them; the message says how to."""


def create_command(namespace: str) -> str:
    """The ``temporal`` CLI command that registers every search attribute in ``namespace``."""
    names = " ".join(f"--name {key.name} --type {cli_type(key)}"
                     for key in SEARCH_ATTRIBUTES)
    return f"temporal operator search-attribute create --namespace {namespace} {names}"


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the missing search attributes; returns the names it added. Raises
    ``SearchAttributesMissing`` when the server refuses (a cluster that allows operators only)."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace))
    known = {**listed.system_attributes, **listed.custom_attributes}
    missing = {key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
               for key in SEARCH_ATTRIBUTES if key.name not in known}
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))
    except RPCError as error:
        raise SearchAttributesMissing(
            f"search attributes {', '.join(sorted(missing))} are not registered in namespace "
            f"{namespace!r} and registering them failed ({error.message}); ask an operator to run:"
            f"\n    {create_command(namespace)}") from error
    return sorted(missing)

