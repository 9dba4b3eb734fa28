"""How to reach a tenant, as stored: its tenant row joined with a configuration's connection settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TenantConnection:
    tenant: str
    base_url: str
    v1_token_encrypted: str | None
    v2_token_encrypted: str | None
    verify: bool
    proxy: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TenantConnection:
        """From a row with the tenant's name (``tenant``), ``base_url``, its encrypted tokens (a row
        without ``v1_token_encrypted`` gives a client of the v2 API only), ``use_proxy`` as
        ``tenant_proxy``, and the configuration's ``ssl_validation`` and ``use_proxy`` (NULL without one)."""
        return cls(
            tenant=str(row["tenant"]),
            base_url=str(row["base_url"]),
            v1_token_encrypted=row.get("v1_token_encrypted"),
            v2_token_encrypted=row["v2_token_encrypted"],
            verify=row["ssl_validation"] is not False,  # on unless the configuration turned it off
            proxy=bool(row["use_proxy"] or row["tenant_proxy"]),
        )
