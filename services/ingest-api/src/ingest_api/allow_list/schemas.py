"""Request body of ``/api/cte/allow_list``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cte_common.sharing import AllowKind


class AllowEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AllowKind
    pattern: str = Field(min_length=1, max_length=2048)
    comment: str = Field(default="", max_length=2000)
