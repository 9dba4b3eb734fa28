"""Routes of ``/api/settings/cte`` (Settings > Threat Exchange)."""

from __future__ import annotations

from fastapi import APIRouter

from ingest_api.exchange_settings import repository
from ingest_api.exchange_settings.domain import cte_settings_out
from ingest_api.exchange_settings.schemas import CteSettings, CteSettingsPatch
from ingest_api.shared import WRITE_ERRORS, SettingsReader, SettingsWriter, State

router = APIRouter(prefix="/settings", tags=["Settings"], responses=WRITE_ERRORS)


@router.get("/cte", summary="Threat Exchange settings (the merge criterion, ...)")
async def get_cte_settings(state: State, _: SettingsReader) -> CteSettings:
    async with state.pool.acquire() as conn:
        return cte_settings_out(await repository.get_cte_settings(conn))


@router.patch("/cte", summary="Change the Threat Exchange settings")
async def update_cte_settings(state: State, patch: CteSettingsPatch, _: SettingsWriter) -> CteSettings:
    async with state.pool.acquire() as conn, conn.transaction():
        out = cte_settings_out(
            await repository.update_cte_settings(conn, patch.criterion, patch.deleteInactiveIndicators)
        )
        await state.publish_change(conn, "settings", "cte", out)
    return out
