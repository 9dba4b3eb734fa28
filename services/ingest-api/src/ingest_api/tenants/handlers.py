"""Routes of ``/api/tenants`` (Settings > Netskope Tenant); tokens are stored encrypted."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from ingest_api.configurations.repository import configurations_of_tenant
from ingest_api.shared import WRITE_ERRORS, AppState, Empty, SettingsReader, SettingsWriter, State, error_answer
from ingest_api.tenants import repository
from ingest_api.tenants.domain import tenant_base_url, tenant_out
from ingest_api.tenants.schemas import Tenant, TenantIn, TenantPatch

router = APIRouter(prefix="/tenants", tags=["Netskope Tenants"], responses=WRITE_ERRORS)

# The outage 503 every operation has, or a deployment without the key (then without Retry-After).
_NO_SECRETS_KEY: dict[int | str, dict[str, Any]] = {
    503: error_answer(
        f"{WRITE_ERRORS[503]['description']}; or tenant tokens cannot be stored: CTE_SECRETS_KEY is not set",
        headers={"Retry-After": {"schema": {"type": "integer"}, "required": False}},
    )
}


@router.post("", status_code=status.HTTP_201_CREATED, summary="Add a Netskope tenant", responses=_NO_SECRETS_KEY)
async def create_tenant(state: State, tenant: TenantIn, _: SettingsWriter) -> Tenant:
    values = {
        "name": tenant.name,
        "tenant_name": tenant.tenantName,
        "base_url": tenant_base_url(tenant.tenantName),
        "v1_token_encrypted": _encrypt(state, tenant.v1Token),
        "v2_token_encrypted": _encrypt(state, tenant.v2Token),
        "initial_range_days": tenant.initialRangeDays,
        "use_proxy": tenant.useSystemProxy,
    }
    async with state.pool.acquire() as conn, conn.transaction():
        row = await repository.insert_tenant(conn, values)
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"Tenant with name='{tenant.name}' already exists.")
        out = tenant_out(row)
        await state.publish_change(conn, "tenant", tenant.name, out)
    return out


@router.get("", summary="List Netskope tenants")
async def list_tenants(state: State, _: SettingsReader) -> list[Tenant]:
    async with state.pool.acquire() as conn:
        return [tenant_out(r) for r in await repository.list_tenants(conn)]


@router.get("/{name}", summary="Get a Netskope tenant")
async def get_tenant(state: State, name: str, _: SettingsReader) -> Tenant:
    async with state.pool.acquire() as conn:
        row = await repository.get_tenant(conn, name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Tenant with name='{name}' does not exist.")
    return tenant_out(row)


@router.patch("/{name}", summary="Update a Netskope tenant", responses=_NO_SECRETS_KEY)
async def update_tenant(state: State, name: str, patch: TenantPatch, _: SettingsWriter) -> Tenant:
    changes = patch.model_dump(exclude_unset=True)
    columns: dict[str, Any] = {}
    if changes.get("tenantName") is not None:
        columns["tenant_name"] = changes["tenantName"]
        columns["base_url"] = tenant_base_url(changes["tenantName"])
    for field, column in (("v1Token", "v1_token_encrypted"), ("v2Token", "v2_token_encrypted")):
        if field in changes:
            columns[column] = _encrypt(state, changes[field])
    if changes.get("initialRangeDays") is not None:
        columns["initial_range_days"] = changes["initialRangeDays"]
    if changes.get("useSystemProxy") is not None:
        columns["use_proxy"] = changes["useSystemProxy"]
    async with state.pool.acquire() as conn, conn.transaction():
        row = await (repository.update_tenant(conn, name, columns) if columns else repository.get_tenant(conn, name))
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Tenant with name='{name}' does not exist.")
        out = tenant_out(row)
        await state.publish_change(conn, "tenant", name, out)
    return out


@router.delete("/{name}", summary="Delete a Netskope tenant")
async def delete_tenant(state: State, name: str, _: SettingsWriter) -> Empty:
    async with state.pool.acquire() as conn, conn.transaction():
        users = await configurations_of_tenant(conn, name)
        if users:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"Tenant '{name}' is used by configurations: {', '.join(users)}."
            )
        if not await repository.delete_tenant(conn, name):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Tenant with name='{name}' does not exist.")
        await state.publish_change(conn, "tenant", name, None)
    return {}


def _encrypt(state: AppState, token: str | None) -> str | None:
    if token is None:
        return None
    if not state.secrets.available:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "Tenant tokens cannot be stored: CTE_SECRETS_KEY is not set."
        )
    return state.secrets.encrypt(token)
