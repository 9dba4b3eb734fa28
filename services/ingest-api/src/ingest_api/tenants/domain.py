"""Netskope tenants without I/O: the base URL and the output shape."""

from __future__ import annotations

from typing import Any

from ingest_api.tenants.schemas import Tenant


def tenant_base_url(tenant_name: str) -> str:
    return tenant_name if "://" in tenant_name else f"https://{tenant_name}.goskope.com"


def tenant_out(row: dict[str, Any]) -> Tenant:
    return {
        "name": row["name"],
        "tenantName": row["tenant_name"],
        "url": row["base_url"],
        "hasV1Token": row["v1_token_encrypted"] is not None,
        "hasV2Token": row["v2_token_encrypted"] is not None,
        "initialRangeDays": row["initial_range_days"],
        "useSystemProxy": row["use_proxy"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
