"""Request and answer models and wire constants of ``/api/cte/sharing``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator, with_config
from typing_extensions import TypedDict

from cte_common.sharing import Action, Outcome, PriorityKind

ACTION_LABELS: dict[str, str] = {"url": "Add to URL List", "file": "Add to File Hash List"}


DRY_RUN_SAMPLE = 100


class ActionIn(BaseModel):
    """The reference's Action object: ``{"label": "Add to URL List", "value": "url", "parameters": {...}}``."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=200)
    value: Action
    parameters: dict[str, Any] = Field(default_factory=dict)


class SharingIn(BaseModel):
    """A sharing configuration: the target as ``action`` + ``parameters``, or as the reference's ``target``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sourceConfiguration: str = Field(min_length=1, max_length=200)
    businessRule: str = Field(min_length=1, max_length=200)
    destinationConfiguration: str = Field(min_length=1, max_length=200)
    action: Action | None = None
    parameters: dict[str, Any] | None = None
    target: ActionIn | None = None
    priority: PriorityKind = "lastSeen"

    @model_validator(mode="after")
    def _one_target(self) -> SharingIn:
        if self.target is not None and (self.action is not None or self.parameters is not None):
            raise ValueError("target: give either action and parameters, or target, not both")
        if self.target is None and self.action is None:
            raise ValueError("action: required ('url' or 'file'), or give the reference's target object")
        return self

    def resolved(self) -> tuple[Action, dict[str, Any]]:
        if self.target is not None:
            return self.target.value, self.target.parameters
        assert self.action is not None
        return self.action, self.parameters or {}


class SharingPatch(BaseModel):
    """What PATCH /sharing/{id} may change. ``parameters`` replaces the stored parameters whole."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    businessRule: str | None = Field(default=None, min_length=1, max_length=200)
    parameters: dict[str, Any] | None = None
    priority: PriorityKind | None = None


# Answers (TypedDicts: see ingest_api.shared)

# A target's parameters as stored: UrlTarget's fields for a URL list, FileTarget's for a file hash list
# (cte_common.sharing), in the order jsonb keeps them; a cap is a whole or a fractional number of MB.
TargetParameters = dict[str, str | int | float | None]


@with_config(ConfigDict(extra="forbid"))
class Target(TypedDict):
    """The reference's Action object."""

    label: str
    value: Action
    parameters: TargetParameters


@with_config(ConfigDict(extra="forbid"))
class Sharing(TypedDict):
    """A sharing configuration, with its target both as ``action`` + ``parameters`` and as ``target``."""

    id: int
    sourceConfiguration: str
    businessRule: str
    destinationConfiguration: str
    action: Action
    parameters: TargetParameters
    target: Target
    priority: PriorityKind
    listKey: str
    createdAt: datetime
    updatedAt: datetime


@with_config(ConfigDict(extra="forbid"))
class DryRunResult(TypedDict):
    """What the sharing's list would hold against what it holds now; lists of values are samples."""

    selected: int
    selectedBytes: int
    wouldAdd: list[str]
    wouldAddCount: int
    wouldRemove: list[str]
    wouldRemoveCount: int
    leftOutByCap: list[str]
    leftOutByCapCount: int
    excluded: dict[Outcome, int]


@with_config(ConfigDict(extra="forbid"))
class SharingDryRun(DryRunResult):
    """A dry run's answer: its result, and whether the sharing's rule is muted now."""

    ruleMuted: bool


ListState = Literal["ok", "pending", "failed", "credentials_rejected"]
ListType = Literal["url", "file_hash"]


@with_config(ConfigDict(extra="forbid"))
class ForeignEntries(TypedDict):
    """Entries of the tenant's list that the sink did not put there."""

    entries: int
    bytes: int


@with_config(ConfigDict(extra="forbid"))
class LeftOut(TypedDict):
    """Values the sharing selects that are not on the list, by reason: beyond the list's cap, beyond the
    tenant's limits across its lists, kept but not writable in the list (IPv6 in a URL list), refused
    by the tenant."""

    cap: int
    tenantLimit: int
    invalid: int
    rejected: int


@with_config(ConfigDict(extra="forbid"))
class SharingListStatus(TypedDict):
    """Where a sharing's list stands on its tenant (see docs/API.md, "List status")."""

    sharingId: int
    sharingName: str
    tenant: str
    listName: str
    listType: ListType
    state: ListState
    entries: int
    bytes: int
    capBytes: int
    fill: float
    foreign: ForeignEntries
    leftOut: LeftOut
    pendingChanges: int
    lastPushAt: datetime | None
    lastReadBackAt: datetime | None
    lastError: str | None
    failures: int
    nextAttemptAt: datetime | None
