"""Routes of ``/api/cte/configurations``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from cte_common.events import IndicatorDelete
from ingest_api.configurations import repository
from ingest_api.configurations.domain import check_parameters, configuration_out
from ingest_api.configurations.schemas import (
    CLEARABLE,
    CONFIG_COLUMNS,
    Configuration,
    ConfigurationDeleted,
    ConfigurationIn,
    ConfigurationPatch,
    ConfigurationRef,
    NamedConfigurationPatch,
    PluginConfigurationIn,
)
from ingest_api.indicators.repository import values_with_source
from ingest_api.shared import WRITE_ERRORS, Reader, State, Writer
from ingest_api.sharing.repository import sharings_to
from ingest_api.tenants.repository import tenant_exists
from ingest_api.write_path import publish_indicator_events

router = APIRouter(prefix="/cte/configurations", tags=["Configurations"], responses=WRITE_ERRORS)
# The reference's 6.x paths that name the configuration in the body: aliases of ours.
ce_router = APIRouter(prefix="/cte/configuration", tags=["Configurations"], responses=WRITE_ERRORS)
plugins_router = APIRouter(prefix="/cte/plugins/configurations", tags=["Configurations"], responses=WRITE_ERRORS)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a plugin configuration")
async def create_configuration(state: State, cfg: ConfigurationIn, _: Writer) -> Configuration:
    cfg.parameters = _parameters(cfg.plugin, cfg.parameters)
    async with state.pool.acquire() as conn, conn.transaction():
        if cfg.tenant is not None and not await tenant_exists(conn, cfg.tenant):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"tenant: no tenant named '{cfg.tenant}'")
        row = await repository.insert_configuration(conn, cfg)
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"Configuration with name='{cfg.name}' already exists.")
        out = configuration_out(row)
        # Published inside the transaction: if Kafka refuses, the insert rolls back with it.
        await state.publish_change(conn, "configuration", cfg.name, out)
    return out


def _parameters(plugin: str, parameters: dict[str, Any]) -> dict[str, Any]:
    try:
        return check_parameters(plugin, parameters)
    except ValidationError as exc:
        detail = [item_error_detail(["body", "parameters", *map(str, e["loc"])], str(e["msg"])) for e in exc.errors()]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"parameters: {exc}") from None


def item_error_detail(loc: list[Any], msg: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": "value_error"}


@router.get("", summary="List plugin configurations")
async def list_configurations(state: State, _: Reader) -> list[Configuration]:
    async with state.pool.acquire() as conn:
        return [configuration_out(r) for r in await repository.list_configurations(conn)]


@router.get("/{name}", summary="Get one plugin configuration")
async def get_configuration(state: State, name: str, _: Reader) -> Configuration:
    async with state.pool.acquire() as conn:
        row = await repository.get_configuration(conn, name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Configuration with name='{name}' does not exist.")
    return configuration_out(row)


@router.patch("/{name}", summary="Update a plugin configuration")
async def update_configuration(state: State, name: str, patch: ConfigurationPatch, _: Writer) -> Configuration:
    given = patch.model_dump(exclude_unset=True, mode="json")
    changes = {k: v for k, v in given.items() if v is not None or k in CLEARABLE}
    async with state.pool.acquire() as conn, conn.transaction():
        current = await repository.get_configuration(conn, name)
        if current is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Configuration with name='{name}' does not exist.")
        if "parameters" in changes:
            changes["parameters"] = _parameters(current["plugin"], changes["parameters"] or {})
        if changes.get("tenant") is not None and not await tenant_exists(conn, changes["tenant"]):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"tenant: no tenant named '{changes['tenant']}'")
        if "tenant" in changes and changes["tenant"] != current["tenant"] and await sharings_to(conn, name):
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"tenant: configuration '{name}' is the destination of sharings; delete them before moving it",
            )
        if current["plugin"] == "netskope" and "tenant" in changes and changes["tenant"] is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "tenant: a netskope configuration needs a tenant"
            )
        row = current
        if changes:
            row = (
                await repository.update_configuration(conn, name, {CONFIG_COLUMNS[k]: v for k, v in changes.items()})
                or current
            )
        out = configuration_out(row)
        await state.publish_change(conn, "configuration", name, out)
    return out


@router.delete("/{name}", summary="Delete a plugin configuration")
async def delete_configuration(
    state: State,
    name: str,
    _: Writer,
    keepData: Annotated[
        bool, Query(description="false: remove this source from every indicator, and indicators left without one")
    ] = True,
) -> ConfigurationDeleted:
    removed = 0
    async with state.pool.acquire() as conn, conn.transaction():
        if await repository.get_configuration(conn, name) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Configuration with name='{name}' does not exist.")
        if not keepData:
            # The read model has one writer: the removal travels as events, before the row goes.
            async for chunk in values_with_source(conn, name):
                await publish_indicator_events(state, [IndicatorDelete(value=v, source=name) for v in chunk])
                removed += len(chunk)
        await repository.delete_configuration(conn, name)
        await state.publish_change(conn, "configuration", name, None)
    return {"deleted": name, "indicatorsRemoved": removed}


@ce_router.delete("", summary="Delete a plugin configuration named in the body (the reference's 6.x path)")
async def delete_configuration_by_body(
    state: State, ref: Annotated[ConfigurationRef, Body()], claims: Writer
) -> ConfigurationDeleted:
    """The same as ``DELETE /api/cte/configurations/{name}?keepData=``."""
    return await delete_configuration(state, ref.name, claims, keepData=ref.keepData)


@plugins_router.get("", summary="List plugin configurations (the reference's 6.x path)")
async def list_plugin_configurations(state: State, claims: Reader) -> list[Configuration]:
    """The same as ``GET /api/cte/configurations``."""
    return await list_configurations(state, claims)


@plugins_router.post(
    "/{plugin_id}",
    status_code=status.HTTP_201_CREATED,
    summary="Create a configuration of a plugin (the reference's 6.x path; its plugin ids too)",
)
async def create_plugin_configuration(
    state: State, plugin_id: Annotated[str, Path(max_length=200)], body: PluginConfigurationIn, claims: Writer
) -> Configuration:
    """The same as ``POST /api/cte/configurations`` with ``plugin`` from the path (``api_sources``,
    ``api_source`` or ``netskope``)."""
    given = body.model_dump(exclude_unset=True, exclude={"plugin"})
    try:
        cfg = ConfigurationIn.model_validate({**given, "plugin": plugin_id})
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
    return await create_configuration(state, cfg, claims)


@plugins_router.patch("", summary="Update a plugin configuration named in the body (the reference's 6.x path)")
async def update_plugin_configuration(state: State, patch: NamedConfigurationPatch, claims: Writer) -> Configuration:
    """The same as ``PATCH /api/cte/configurations/{name}`` with the rest of the body."""
    given = patch.model_dump(exclude={"name"}, exclude_unset=True)
    return await update_configuration(state, patch.name, ConfigurationPatch.model_validate(given), claims)
