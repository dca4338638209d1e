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
    with pytest.raises(ConfigError, match="BILLING_WORKFLOW_SANDBOX: Input should be a valid boolean"):
        Settings.from_env()


def test_the_startup_wait_is_five_minutes_unless_set(monkeypatch):
    monkeypatch.delenv("BILLING_STARTUP_TIMEOUT", raising=False)
    assert Settings.from_env().startup_timeout == 300
    monkeypatch.setenv("BILLING_STARTUP_TIMEOUT", "2.5")
    assert Settings.from_env().startup_timeout == 2.5


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_a_startup_wait_that_is_not_seconds_is_a_config_error(monkeypatch, value):
    monkeypatch.setenv("BILLING_STARTUP_TIMEOUT", value)
    with pytest.raises(ConfigError, match="invalid settings: BILLING_STARTUP_TIMEOUT: "):
        Settings.from_env()


def test_the_worker_logs_in_as_itself_and_migrates_only_with_the_owners_url(monkeypatch):
    for name in ("BILLING_DB_ROLE", "BILLING_MIGRATION_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert settings.database_role is None and settings.migration_url is None
    with pytest.raises(ConfigError, match="BILLING_MIGRATION_URL is not set"):
        settings.require_migration_url()
    monkeypatch.setenv("BILLING_MIGRATION_URL", "postgresql://billing_owner@db/billing")
    assert Settings.from_env().require_migration_url() == "postgresql://billing_owner@db/billing"


def test_a_dot_env_file_is_read_and_the_environment_wins(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("BILLING_TASK_QUEUE=from-file\nBILLING_SNAPSHOT_EVERY=7\n")
    monkeypatch.delenv("BILLING_TASK_QUEUE", raising=False)
    monkeypatch.setenv("BILLING_SNAPSHOT_EVERY", "9")
    settings = Settings.from_env()
    assert (settings.task_queue, settings.snapshot_every) == ("from-file", 9)
