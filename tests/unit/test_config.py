"""Settings from the environment."""

from __future__ import annotations

import pytest

from config import ConfigError, Settings


@pytest.mark.parametrize("value, sandboxed", [(None, False), ("", False), ("0", False),
                                              ("off", False), ("1", True), ("TRUE", True)])
def test_the_workflow_sandbox_is_off_unless_asked_for(monkeypatch, value, sandboxed):
    if value is None:
        monkeypatch.delenv("BILLING_WORKFLOW_SANDBOX", raising=False)
    else:
        monkeypatch.setenv("BILLING_WORKFLOW_SANDBOX", value)
    assert Settings.from_env().workflow_sandbox is sandboxed


def test_a_flag_that_is_neither_on_nor_off_is_a_config_error(monkeypatch):
    monkeypatch.setenv("BILLING_WORKFLOW_SANDBOX", "maybe")
    with pytest.raises(ConfigError, match="BILLING_WORKFLOW_SANDBOX must be 1 or 0"):
        Settings.from_env()
