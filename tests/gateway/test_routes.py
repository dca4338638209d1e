"""Every route and every status code of the HTTP API, in process, over a real Postgres, dev
server and worker. What the log holds is checked with SQL, not through the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from gateway.problems import PROBLEM_JSON, TYPE_PREFIX


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The problem body, after checking its status, media type and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == TYPE_PREFIX + slug, body
    assert body["status"] == status
    return body


async def open_account(api: httpx.AsyncClient, currency: str = "USD", overdraft_limit: int = 0) -> str:
    account_id = f"acct-{uuid.uuid4().hex[:10]}"
    response = await api.post("/accounts", json={"account_id": account_id, "currency": currency,
                                                 "overdraft_limit": overdraft_limit})
    assert response.status_code == 201, response.text
    return account_id


async def send(api: httpx.AsyncClient, account_id: str, kind: str, amount: Any, key: str | None = None,
               **fields: Any) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await api.post(f"/accounts/{account_id}/{kind}", json={"amount": amount, **fields},
                          headers=headers)


async def logged(pool, account_id: str) -> list[tuple[str, str | None]]:
    """The account's events as (type, command id), straight from the log."""
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT event_type, command_id FROM account_events "
                                    "WHERE account_id = %s ORDER BY version", (account_id,))
        return [(kind, command_id) for kind, command_id in await cursor.fetchall()]


async def test_open_fund_charge_and_read(api: httpx.AsyncClient, pool) -> None:
    account_id = f"acct-{uuid.uuid4().hex[:10]}"
    opened = await api.post("/accounts", json={"account_id": account_id, "currency": "EUR",
                                               "overdraft_limit": 500})
    assert opened.status_code == 201
    assert opened.headers["location"] == f"/accounts/{account_id}"
    assert opened.json() | {"pending_commands": 0} == {
        "account_id": account_id, "currency": "EUR", "balance": 0, "version": 1, "status": "open",
        "overdraft_limit": 500, "pending_commands": 0}

    funded = await send(api, account_id, "funds", 10_000, "top-up-1", description="top-up")
    assert funded.status_code == 200
    assert funded.headers["idempotency-key"] == "top-up-1"
    assert "idempotent-replayed" not in funded.headers
    assert funded.json() == {"command_id": "top-up-1", "status": "applied", "reason": "",
                             "balance": 10_000, "version": 2, "original_status": None}
    charged = await send(api, account_id, "charges", 10_250, "invoice-1", currency="EUR")
    assert charged.status_code == 200
    assert charged.json()["balance"] == -250  # within the overdraft limit

    view = await api.get(f"/accounts/{account_id}")
    assert view.status_code == 200
    assert (view.json()["balance"], view.json()["version"]) == (-250, 3)
    events = await api.get(f"/accounts/{account_id}/events")
    assert events.status_code == 200
    assert [(e["event_type"], e["amount"], e["command_id"]) for e in events.json()["events"]] == [
        ("ACCOUNT_CREATED", None, None), ("FUND_ADDED", 10_000, "top-up-1"),
        ("CHARGE_APPLIED", 10_250, "invoice-1")]
    assert await logged(pool, account_id) == [("ACCOUNT_CREATED", None), ("FUND_ADDED", "top-up-1"),
                                              ("CHARGE_APPLIED", "invoice-1")]


async def test_a_missing_key_is_generated_and_returned(api: httpx.AsyncClient, pool) -> None:
    account_id = await open_account(api)
    response = await send(api, account_id, "funds", 100)
    key = response.headers["idempotency-key"]
    assert uuid.UUID(key).version == 4
    assert response.json()["command_id"] == key
    assert (await logged(pool, account_id))[-1] == ("FUND_ADDED", key)
    again = await send(api, account_id, "funds", 100)  # no key: another command
    assert again.headers["idempotency-key"] != key
    assert again.json()["balance"] == 200


async def test_a_repeat_answers_the_first_response_and_records_nothing(api: httpx.AsyncClient,
                                                                       pool) -> None:
    account_id = await open_account(api)
    first = await send(api, account_id, "funds", 700, "k-fund", description="first")
    again = await send(api, account_id, "funds", 700, "k-fund", description="first")
    assert again.status_code == first.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["idempotency-key"] == "k-fund"

    declined = await send(api, account_id, "charges", 5_000, "k-big")
    declined_again = await send(api, account_id, "charges", 5_000, "k-big")
    assert problem(declined, 402, "insufficient-funds") == problem(declined_again, 402, "insufficient-funds")
    assert "idempotent-replayed" not in declined.headers
    assert declined_again.headers["idempotent-replayed"] == "true"

    await send(api, account_id, "charges", 200, "k-later")  # the balance moves on
    late = await send(api, account_id, "funds", 700, "k-fund", description="first")
    assert late.status_code == 200 and late.headers["idempotent-replayed"] == "true"
    assert (late.json()["status"], late.json()["version"]) == ("applied", first.json()["version"])
    assert late.json()["balance"] == 500  # today's balance: what the account answers a repeat with
    assert await logged(pool, account_id) == [("ACCOUNT_CREATED", None), ("FUND_ADDED", "k-fund"),
                                              ("CHARGE_DECLINED", "k-big"), ("CHARGE_APPLIED", "k-later")]


async def test_a_key_reused_for_another_command_is_422_and_records_nothing(api: httpx.AsyncClient,
                                                                           pool) -> None:
    account_id = await open_account(api)
    await send(api, account_id, "funds", 700, "k1")
    other_amount = await send(api, account_id, "funds", 800, "k1")
    assert "amount of 700, not 800" in problem(other_amount, 422, "idempotency-key-reused")["detail"]
    assert other_amount.headers["idempotency-key"] == "k1"
    other_kind = await send(api, account_id, "charges", 700, "k1")
    assert "not a charge" in problem(other_kind, 422, "idempotency-key-reused")["detail"]
    other_text = await send(api, account_id, "funds", 700, "k1", description="changed")
    problem(other_text, 422, "idempotency-key-reused")
    close = await api.post(f"/accounts/{account_id}/close", headers={"Idempotency-Key": "k1"})
    problem(close, 422, "idempotency-key-reused")
    assert await logged(pool, account_id) == [("ACCOUNT_CREATED", None), ("FUND_ADDED", "k1")]


async def test_insufficient_funds_is_402_with_the_balance(api: httpx.AsyncClient) -> None:
    account_id = await open_account(api, overdraft_limit=100)
    await send(api, account_id, "funds", 1_000)
    body = problem(await send(api, account_id, "charges", 1_101, "too-much"), 402, "insufficient-funds")
    assert (body["account_id"], body["command_id"], body["balance"], body["version"]) == (
        account_id, "too-much", 1_000, 3)
    assert "insufficient funds" in body["detail"]


async def test_unknown_account_is_404_on_every_route(api: httpx.AsyncClient) -> None:
    missing = f"nobody-{uuid.uuid4().hex[:8]}"
    problem(await api.get(f"/accounts/{missing}"), 404, "account-not-found")
    problem(await api.get(f"/accounts/{missing}/events"), 404, "account-not-found")
    for kind in ("funds", "charges"):
        response = await send(api, missing, kind, 10, "k")
        assert problem(response, 404, "account-not-found")["account_id"] == missing
        assert response.headers["idempotency-key"] == "k"
    problem(await api.post(f"/accounts/{missing}/close"), 404, "account-not-found")


async def test_opening_an_existing_account_is_409(api: httpx.AsyncClient) -> None:
    account_id = await open_account(api)
    again = await api.post("/accounts", json={"account_id": account_id, "currency": "USD"})
    problem(again, 409, "account-exists")


async def test_close_then_every_command_is_409(api: httpx.AsyncClient, pool) -> None:
    account_id = await open_account(api)
    await send(api, account_id, "funds", 300, "f1")
    holding = problem(await api.post(f"/accounts/{account_id}/close", json={"reason": "customer left"},
                                     headers={"Idempotency-Key": "bye-0"}), 409, "account-has-balance")
    assert holding["balance"] == 300
    body = {"reason": "customer left", "payout": True}
    closed = await api.post(f"/accounts/{account_id}/close", json=body, headers={"Idempotency-Key": "bye"})
    assert closed.status_code == 200, closed.text
    assert closed.json() == {"account_id": account_id, "command_id": "bye", "version": 5,
                             "reason": "customer left"}
    assert "idempotent-replayed" not in closed.headers
    replay = await api.post(f"/accounts/{account_id}/close", json=body, headers={"Idempotency-Key": "bye"})
    assert (replay.status_code, replay.json()) == (200, closed.json())
    assert replay.headers["idempotent-replayed"] == "true"
    problem(await api.post(f"/accounts/{account_id}/close", json={"reason": "other", "payout": True},
                           headers={"Idempotency-Key": "bye"}), 422, "idempotency-key-reused")

    for kind in ("funds", "charges"):
        body = problem(await send(api, account_id, kind, 10, f"late-{kind}"), 409, "account-closed")
        assert body["detail"] == "account is closed"
    second_close = await api.post(f"/accounts/{account_id}/close")
    assert problem(second_close, 409, "account-closed")["command_id"] == second_close.headers[
        "idempotency-key"]
    assert (await api.get(f"/accounts/{account_id}")).json()["status"] == "closed"
    assert [kind for kind, _ in await logged(pool, account_id)] == [
        "ACCOUNT_CREATED", "FUND_ADDED", "COMMAND_REJECTED", "BALANCE_PAID_OUT", "ACCOUNT_CLOSED",
        "INVOICE_DRAFTED", "INVOICE_FINALIZED", "COMMAND_REJECTED", "COMMAND_REJECTED",
        "COMMAND_REJECTED"]  # declines and rejections are recorded; a reused key is not


async def test_a_command_in_another_currency_is_422(api: httpx.AsyncClient, pool) -> None:
    account_id = await open_account(api, currency="EUR")
    body = problem(await send(api, account_id, "funds", 100, "usd", currency="USD"), 422,
                   "currency-mismatch")
    assert body["detail"] == "the command is in USD, the account in EUR"
    assert (await logged(pool, account_id))[-1] == ("COMMAND_REJECTED", "usd")


@pytest.mark.parametrize("body", [
    {"amount": 1.5}, {"amount": "100"}, {"amount": 0}, {"amount": -5}, {"amount": 10**15 + 1},
    {"amount": True}, {}, {"amount": 10, "colour": "red"}, {"amount": 10, "currency": "XXX"},
    {"amount": 10, "currency": "usd"}, {"amount": 10, "description": "nul\x00"},
    {"amount": 10, "description": "x" * 501},
], ids=lambda body: repr(body)[:40])
async def test_invalid_input_is_422_and_sends_nothing(api: httpx.AsyncClient, pool, body: dict) -> None:
    account_id = await open_account(api)
    response = await api.post(f"/accounts/{account_id}/charges", json=body)
    assert problem(response, 422, "invalid-request")["errors"]
    assert await logged(pool, account_id) == [("ACCOUNT_CREATED", None)]


async def test_malformed_requests_are_422(api: httpx.AsyncClient) -> None:
    account_id = await open_account(api)
    not_json = await api.post(f"/accounts/{account_id}/funds", content=b"{amount: 1",
                              headers={"content-type": "application/json"})
    problem(not_json, 422, "invalid-request")
    not_utf8 = await api.post(f"/accounts/{account_id}/close", content=b'{"reason": "\xff\xfe"}',
                              headers={"content-type": "application/json"})
    problem(not_utf8, 422, "invalid-request")  # found by schemathesis: was a 400
    problem(await api.get("/accounts/not%20an%20id"), 422, "invalid-request")
    problem(await send(api, account_id, "funds", 10, "k" * 129), 422, "invalid-request")
    problem(await api.post("/accounts", json={"account_id": "x", "currency": "USD",
                                              "overdraft_limit": -1}), 422, "invalid-request")
    problem(await api.post("/accounts", json={"account_id": "x", "currency": "EURO"}), 422,
            "invalid-request")


async def test_an_account_opened_with_a_billing_period_keeps_it(api: httpx.AsyncClient, pool) -> None:
    account_id = f"acct-{uuid.uuid4().hex[:10]}"
    opened = await api.post("/accounts", json={"account_id": account_id, "currency": "USD",
                                               "billing_period": "P10D"})
    assert opened.status_code == 201, opened.text
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT payload->>'billing_period' FROM account_events"
                                    " WHERE account_id = %s AND version = 1", (account_id,))
        assert await cursor.fetchone() == ("P10D",)
    refused = await api.post("/accounts", json={"account_id": "x", "currency": "USD",
                                                "billing_period": "fortnightly"})
    assert "fortnightly" in problem(refused, 422, "invalid-request")["detail"]


async def test_openapi_and_docs(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    charges = schema["paths"]["/accounts/{account_id}/charges"]["post"]["responses"]
    assert set(charges) == {"200", "402", "404", "409", "422", "503"}
    assert set(charges["402"]["content"]) == {PROBLEM_JSON}
    assert (await api.get("/docs")).status_code == 200
