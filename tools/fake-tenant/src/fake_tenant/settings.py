"""The fake tenant's settings, read from the environment (prefix ``CTE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    # Not CommonSettings: the fake tenant stands outside the system and needs no Kafka or PostgreSQL.
    model_config = SettingsConfigDict(env_prefix="CTE_", env_file=".env", extra="ignore")

    log_level: str = "INFO"
    fake_tenant_host: str = "127.0.0.1"
    fake_tenant_port: int = Field(default=8900, ge=0, le=65535)
    # The tenant's API tokens: V1 for updateFileHashList (the "token" field), V2 for the
    # Netskope-Api-Token header. Local-only defaults; a client configured with them just works.
    fake_tenant_v1_token: SecretStr = SecretStr("fake-v1-token")
    fake_tenant_v2_token: SecretStr = SecretStr("fake-v2-token")
    # Serve HTTPS when both are set (a self-signed certificate is enough for the clients' tests).
    fake_tenant_tls_certfile: Path | None = None
    fake_tenant_tls_keyfile: Path | None = None

    # Caps of the tenant's lists (defaults: the documented ones).
    fake_tenant_url_list_max_bytes: int = Field(default=7 * MiB, ge=1)
    fake_tenant_url_list_max_entries: int = Field(default=300_000, ge=1)
    # Per tenant, across all its URL lists (documented: 300,000 entries, 1,000 regex entries), and the
    # bytes of one upload (8 MB). Lower them to test how a client lives within them.
    fake_tenant_url_entries_max: int = Field(default=300_000, ge=1)
    fake_tenant_regex_entries_max: int = Field(default=1_000, ge=0)
    fake_tenant_upload_max_bytes: int = Field(default=8 * MiB, ge=1)
    # Where a 400 puts the refused URL entries, as [entry, reason] pairs: "message" (what Netskope's
    # plugin reads) or "errors" (the documentation's example). PUT /_sim/behaviour changes it.
    fake_tenant_error_shape: Literal["message", "errors"] = "message"
    fake_tenant_file_hash_list_max_bytes: int = Field(default=8 * MiB, ge=1)

    # REST v1 allows 24 requests per 5 s per token; v2 gets a generous configurable budget.
    # A limit of 0 turns that limiter off.
    fake_tenant_v1_rate_limit: int = Field(default=24, ge=0)
    fake_tenant_v1_rate_window_seconds: float = Field(default=5.0, gt=0)
    fake_tenant_v2_rate_limit: int = Field(default=100, ge=0)
    fake_tenant_v2_rate_window_seconds: float = Field(default=1.0, gt=0)

    # Alert export: alerts per page (documented: 10,000), the wait_time answered once an iterator has
    # caught up, and the rate limit per endpoint (documented: 4 requests per second; 0 turns it off).
    fake_tenant_alert_page_size: int = Field(default=10_000, ge=1)
    fake_tenant_alert_wait_time: int = Field(default=30, ge=0)
    fake_tenant_alert_rate_limit: int = Field(default=4, ge=0)
    fake_tenant_alert_rate_window_seconds: float = Field(default=1.0, gt=0)

    # Fault injection: the seed of its random draws (unset: a random seed), how long an injected
    # timeout holds the answer, and how many requests /_sim/requests keeps.
    fake_tenant_fault_seed: int | None = None
    fake_tenant_timeout_seconds: float = Field(default=30.0, gt=0)
    fake_tenant_request_log_size: int = Field(default=100_000, ge=1)

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.fake_tenant_tls_certfile is None) != (self.fake_tenant_tls_keyfile is None):
            raise ValueError("CTE_FAKE_TENANT_TLS_CERTFILE and CTE_FAKE_TENANT_TLS_KEYFILE go together")
        return self
