"""The Threat Exchange settings' output shape."""

from __future__ import annotations

from typing import Any

from ingest_api.exchange_settings.schemas import CteSettings


def cte_settings_out(row: dict[str, Any]) -> CteSettings:
    return {"criterion": row["criterion"], "deleteInactiveIndicators": row["delete_inactive_indicators"]}
