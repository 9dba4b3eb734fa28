"""The Threat Exchange settings' output shape."""

from __future__ import annotations

from typing import Any


def cte_settings_out(row: dict[str, Any]) -> dict[str, Any]:
    return {"criterion": row["criterion"], "deleteInactiveIndicators": row["delete_inactive_indicators"]}
