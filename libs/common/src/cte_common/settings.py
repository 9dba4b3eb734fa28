"""Settings every service shares, read from the environment (prefix ``CTE_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "CommonSettings",
]


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CTE_", env_file=".env", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    database_url: str = "postgresql://postgres@127.0.0.1:5433/cte"
    # Namespaces the topics, so several stacks (a demo and a test run, say) can share one broker.
    topic_prefix: str = "cte"
    log_level: str = "INFO"
    # Where the consumer services serve /metrics; 0.0.0.0 inside a container.
    metrics_host: str = "127.0.0.1"
    db_pool_max: int = Field(default=8, ge=1)
    # How long one attempt to open a database connection may take before it counts as a failure.
    db_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # How long a starting service waits for Kafka and PostgreSQL before it exits.
    startup_timeout_seconds: float = Field(default=300.0, gt=0)
    # Encrypts tenant API tokens at rest (a Fernet key: 32 url-safe base64 bytes). Shared by the API,
    # which stores tokens, and the sink, which uses them.
    secrets_key: SecretStr | None = None
