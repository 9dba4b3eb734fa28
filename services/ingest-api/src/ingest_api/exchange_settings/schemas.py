"""Request and answer models of ``/api/settings/cte``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, with_config
from typing_extensions import TypedDict

from cte_common.events import Criterion


class CteSettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criterion: Criterion | None = None
    deleteInactiveIndicators: bool | None = None


@with_config(ConfigDict(extra="forbid"))
class CteSettings(TypedDict):
    """The answer (TypedDicts: see ingest_api.shared)."""

    criterion: Criterion
    deleteInactiveIndicators: bool
