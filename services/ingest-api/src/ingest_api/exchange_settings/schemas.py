"""Request body of ``/api/settings/cte``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cte_common.events import Criterion


class CteSettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criterion: Criterion | None = None
    deleteInactiveIndicators: bool | None = None
