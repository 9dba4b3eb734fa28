"""Request and answer models of ``/api/tenants``."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, with_config
from typing_extensions import TypedDict


class TenantIn(BaseModel):
    """Settings > Netskope Tenant. ``tenantName`` is the tenant's name (``acme`` for acme.goskope.com)
    or its full base URL (for a tenant on another domain, or the fake tenant in tests)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # No "/": the name is part of every list key (tenant/action/list).
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^/]+$")
    tenantName: str = Field(min_length=1, max_length=500)
    v1Token: str | None = Field(default=None, min_length=1, max_length=2000)
    v2Token: str | None = Field(default=None, min_length=1, max_length=2000)
    initialRangeDays: int = Field(default=7, ge=0, le=365)
    useSystemProxy: bool = False

    @field_validator("tenantName")
    @classmethod
    def _tenant_name(cls, value: str) -> str:
        if "://" in value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("a tenant URL must be http(s)://host[:port]")
            return value.rstrip("/")
        if value.endswith(".goskope.com"):
            raise ValueError("give the tenant name without goskope.com")
        return value


class TenantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenantName: str | None = Field(default=None, min_length=1, max_length=500)
    v1Token: str | None = Field(default=None, min_length=1, max_length=2000)
    v2Token: str | None = Field(default=None, min_length=1, max_length=2000)
    initialRangeDays: int | None = Field(default=None, ge=0, le=365)
    useSystemProxy: bool | None = None


# Answers (TypedDicts: see ingest_api.shared)


@with_config(ConfigDict(extra="forbid"))
class Tenant(TypedDict):
    """A tenant as the API shows it: whether tokens are set, never the tokens."""

    name: str
    tenantName: str
    url: str
    hasV1Token: bool
    hasV2Token: bool
    initialRangeDays: int
    useSystemProxy: bool
    createdAt: datetime
    updatedAt: datetime
