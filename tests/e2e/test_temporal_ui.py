"""The Temporal web UI as a person uses it: headless Chromium lists accounts by a search-attribute
query and reads one account's balance from its current details.

This module's dev server runs with its UI (the session's shared one has none); the worker is the
real ``python worker.py``. The browser is Debian's ``chromium`` driven through ``chromedriver``
(``scripts/install-browser.sh``): without them the test is skipped on a workstation and fails in
CI. The screenshots go to ``tmp_path``, or to ``$UI_SCREENSHOTS`` when set, which is how
``scripts/ui-screenshots.py`` refreshes the ones in ``docs/images/``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    NoSuchFrameException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from client.account_client import AccountClient
from tests.conftest import BIN
from tests.e2e.conftest import WorkerProcess
from workflows.interface import workflow_id
from workflows.visibility import SEARCH_ATTRIBUTES

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000")
PAGE_TIMEOUT = 30.0
"""Seconds a page may take to show what is awaited: the UI renders in 6-10 s on a busy 2-core box."""
VISIBILITY_TIMEOUT = 10.0
RPC_TIMEOUT = 15.0
RERENDERED = (StaleElementReferenceException, NoSuchElementException, NoSuchFrameException)
OWING_QUERY = 'BillingStatus="open" AND BillingBalance < 0'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ui_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def temporal_env(ui_port: int) -> AsyncIterator[WorkflowEnvironment]:
    """Overrides the session's dev server for this module: this one serves the web UI, and only
    this module's accounts, so the fixed names in the screenshots cannot clash."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        ui=True,
        ui_port=ui_port,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def ui_url(temporal_env: WorkflowEnvironment, ui_port: int) -> str:
    return f"http://127.0.0.1:{ui_port}/namespaces/{temporal_env.client.namespace}"


@pytest.fixture(scope="module", autouse=True)
def browser_installed() -> None:
    """Skip when Chromium is not installed, unless in CI (env ``CI`` set), where it must be;
    autouse, so it decides before any server starts."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        message = f"{' and '.join(missing)} missing: run scripts/install-browser.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless Chromium through chromedriver, both Debian's; no download is attempted."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in BROWSER_ARGS:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("UI_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def page_text(driver: WebDriver) -> str:
    """The visible text of the page and of its frames: the UI renders a workflow's summary and
    Markdown details each in a sandboxed iframe."""
    texts = [driver.find_element(By.TAG_NAME, "body").text]
    for frame in driver.find_elements(By.TAG_NAME, "iframe"):
        driver.switch_to.frame(frame)
        try:
            texts.append(driver.find_element(By.TAG_NAME, "body").text)
        finally:
            driver.switch_to.default_content()
    return "\n".join(texts)


def wait_for_page(driver: WebDriver, what: str, shown: Callable[[str], bool]) -> str:
    """The page's text once ``shown`` accepts it; fails with that text after ``PAGE_TIMEOUT``.
    Elements that vanish while read (the UI re-renders as data arrives) mean: read again."""
    text = ""

    def ready(driver: WebDriver) -> bool:
        nonlocal text
        text = page_text(driver)
        return shown(text)

    try:
        WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.25, ignored_exceptions=RERENDERED).until(ready)
    except TimeoutException:
        raise AssertionError(f"{what} not shown within {PAGE_TIMEOUT:g} s at {driver.current_url}; "
                             f"the page reads:\n{text}") from None
    return text


async def listed(client: Client, query: str, expected: set[str]) -> set[str]:
    """The workflow ids ``query`` lists, once they are ``expected`` (visibility lags)."""
    deadline = asyncio.get_running_loop().time() + VISIBILITY_TIMEOUT
    while True:
        found = {execution.id async for execution in client.list_workflows(query)}
        if found == expected or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_the_ui_lists_owing_accounts_and_shows_the_balance_in_the_details(
        temporal_env: WorkflowEnvironment, task_queue: str, worker_process: WorkerProcess,
        browser: WebDriver, ui_url: str, screenshots: Path) -> None:
    accounts = AccountClient(temporal_env.client, task_queue, rpc_timeout=RPC_TIMEOUT)
    await accounts.open("acme", "USD", overdraft_limit=5_000)
    await accounts.charge("acme", 1_250, command_id="usage-2026-11", description="API calls")
    await accounts.open("globex", "EUR")
    await accounts.add_funds("globex", 700)
    await accounts.open("initech", "USD")
    await accounts.close("initech", reason="moved to another provider")
    owing, positive, closed = workflow_id("acme"), workflow_id("globex"), workflow_id("initech")
    # The UI asks the same visibility store: once the API lists the final picture, so does a page.
    assert await listed(temporal_env.client, OWING_QUERY, {owing}) == {owing}
    assert await listed(temporal_env.client, 'BillingStatus="closed"', {closed}) == {closed}

    browser.get(f"{ui_url}/workflows?query={quote(OWING_QUERY)}")
    text = wait_for_page(browser, f"{owing} in the list", lambda text: owing in text)
    assert positive not in text and closed not in text
    browser.save_screenshot(screenshots / "ui-owing-accounts.png")

    run_id = (await accounts.handle("acme").describe()).run_id
    browser.get(f"{ui_url}/workflows/{owing}/{run_id}/user-metadata")
    text = wait_for_page(browser, "the balance in the current details",
                         lambda text: "Account acme\n" in text and "-12.50" in text)
    assert "Account acme, USD" in text  # the static summary
    assert "50.00" in text and "CHARGE_APPLIED -12.50" in text  # overdraft limit, latest events
    browser.save_screenshot(screenshots / "ui-account-details.png")
