from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from cte_common.settings import CommonSettings


class Settings(CommonSettings):
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Processes serving the API (uvicorn workers sharing the port); None: one per core available to it,
    # at most 4. The HTTP work of a POST is the API's CPU, so processes let it use more than one core.
    api_workers: int | None = Field(default=None, ge=1, le=64)
    # The first API client, so a fresh stack can be used at once (see .env.example).
    bootstrap_client_id: str | None = None
    bootstrap_client_secret: SecretStr | None = None
    # The first administrator, created at start-up while no user exists; the password must be changed at
    # first login (see .env.example).
    bootstrap_admin_username: str | None = None
    bootstrap_admin_password: SecretStr | None = None
    # Failed sign-ins from one address within five minutes that lock the address for five minutes (0: never).
    signin_address_max_failures: int = Field(default=20, ge=0)
    # Signs access tokens; every replica must share it. Without one, a random key is made per process.
    jwt_secret: SecretStr | None = None
    token_ttl_minutes: int = Field(default=120, ge=1)
    max_batch_items: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # Upper bound for ?wait=true: how long a write waits for the read model to show it.
    wait_timeout_seconds: float = Field(default=10.0, gt=0)
    # How long a write waits for Kafka to acknowledge its events before it answers 503 (the broker is
    # unreachable): well under a client's usual timeout, and above a healthy acknowledgement's milliseconds.
    publish_timeout_seconds: float = Field(default=10.0, gt=0)
    # Idempotency-Key: how long a key and its answer are kept, and how long a request holds its key
    # before a retry may take it over (its process died): above the longest request (publish and wait).
    idempotency_key_hours: float = Field(default=24.0, gt=0)
    idempotency_lease_seconds: float = Field(default=30.0, gt=0)
    # How long /readyz waits for each dependency's answer.
    ready_timeout_seconds: float = Field(default=2.0, gt=0)
    # The rule-engine's consumer name, whose positions tell when the read model shows a write.
    read_model_consumer: str = "rule-engine.indicators"
    # The web console's built files (served at "/"); None: console/dist of this source checkout.
    console_dir: Path | None = None
