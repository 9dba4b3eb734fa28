"""Request and answer models of ``/api/cte/allow_list``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from cte_common.sharing import AllowKind


class AllowEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AllowKind
    pattern: str = Field(min_length=1, max_length=2048)
    comment: str = Field(default="", max_length=2000)


# Answers (TypedDicts: see ingest_api.shared)


@with_config(ConfigDict(extra="forbid"))
class AllowEntry(TypedDict):
    """An allow-list entry, as its configuration change carries it."""

    id: int
    kind: AllowKind
    pattern: str
    comment: str
    createdAt: datetime


@with_config(ConfigDict(extra="forbid"))
class AllowEntryOut(AllowEntry):
    """An allow-list entry with how often the rule-engine found it matching."""

    hits: int
    lastHitAt: datetime | None
