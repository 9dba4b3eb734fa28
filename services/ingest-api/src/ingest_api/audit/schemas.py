"""The audit log's answer model."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

Outcome = Literal["success", "failure"]


@with_config(ConfigDict(extra="forbid"))
class AuditEntry(TypedDict):
    """One sign-in or change: who, when, what, from where. ``details`` is the request as JSON text with
    every secret replaced by ``"[redacted]"``."""

    id: int
    at: datetime
    actor: str
    address: str | None
    action: str
    resource: str
    target: str | None
    outcome: Outcome
    status: int | None
    details: str
