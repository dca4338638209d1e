"""What a reconciliation finds: one ``Finding`` per thing that does not reconcile, in a ``Report``."""

from __future__ import annotations

from pydantic import BaseModel, computed_field


class Finding(BaseModel):
    """One thing that does not reconcile: ``field`` of ``account_id`` should be ``expected``."""

    account_id: str
    field: str
    expected: int | str | None
    actual: int | str | None
    detail: str = ""

    def line(self) -> str:
        text = f"account {self.account_id}: {self.field} expected {self.expected}, got {self.actual}"
        return f"{text} ({self.detail})" if self.detail else text


class Report(BaseModel):
    """What ``reconcile`` looked at and what it found; ``ok`` when nothing."""

    accounts_checked: int = 0
    events_checked: int = 0
    workflows_checked: int = 0
    workflows_busy: int = 0  # differed while busy (commands pending or state moving): not findings
    findings: list[Finding] = []
    repaired: list[str] = []
    """Accounts whose workflow was not running and was revived from the log (``--repair``)."""
    elapsed_seconds: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        lines = [f"accounts {self.accounts_checked}, events {self.events_checked}, workflows "
                 f"{self.workflows_checked}, findings {len(self.findings)}"]
        if self.repaired:
            lines.append(f"revived the workflows of {', '.join(self.repaired)}")
        return "\n".join(lines + [finding.line() for finding in self.findings])
