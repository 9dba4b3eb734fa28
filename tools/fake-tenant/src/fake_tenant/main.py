"""Entry point of the fake Netskope tenant: ``cte-fake-tenant`` (uvicorn serving :func:`create_app`)."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cte_common.logs import configure_logging
from fake_tenant.domain import Tenant, TenantConfig, TenantError
from fake_tenant.handlers import NetworkSimulation, api_router, list_error, sim_router
from fake_tenant.settings import Settings

log = logging.getLogger(__name__)


def tenant_config(settings: Settings) -> TenantConfig:
    return TenantConfig(
        url_list_max_bytes=settings.fake_tenant_url_list_max_bytes,
        url_list_max_entries=settings.fake_tenant_url_list_max_entries,
        tenant_url_entries_max=settings.fake_tenant_url_entries_max,
        tenant_regex_entries_max=settings.fake_tenant_regex_entries_max,
        upload_max_bytes=settings.fake_tenant_upload_max_bytes,
        error_shape=settings.fake_tenant_error_shape,
        file_hash_list_max_bytes=settings.fake_tenant_file_hash_list_max_bytes,
        alert_page_size=settings.fake_tenant_alert_page_size,
        alert_wait_time=settings.fake_tenant_alert_wait_time,
        alert_rate_limit=settings.fake_tenant_alert_rate_limit,
        alert_rate_window=settings.fake_tenant_alert_rate_window_seconds,
        v1_rate_limit=settings.fake_tenant_v1_rate_limit,
        v1_rate_window=settings.fake_tenant_v1_rate_window_seconds,
        v2_rate_limit=settings.fake_tenant_v2_rate_limit,
        v2_rate_window=settings.fake_tenant_v2_rate_window_seconds,
        fault_seed=settings.fake_tenant_fault_seed,
        timeout_seconds=settings.fake_tenant_timeout_seconds,
        request_log_size=settings.fake_tenant_request_log_size,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    tenant = Tenant(tenant_config(settings))
    app = FastAPI(
        title="Fake Netskope tenant",
        version="0.1.0",
        description="URL lists (REST v2), file hash lists (REST v1) and alert export, in memory; "
        "/_sim/ drives it from tests.",
        docs_url="/_sim/docs",
        openapi_url="/_sim/openapi.json",
        redoc_url=None,
    )
    app.state.tenant = tenant
    app.state.tokens = (settings.fake_tenant_v1_token, settings.fake_tenant_v2_token)
    app.include_router(api_router)
    app.include_router(sim_router)
    app.add_middleware(NetworkSimulation, tenant=tenant)

    @app.exception_handler(TenantError)
    async def on_tenant_error(request: Request, exc: TenantError) -> JSONResponse:
        return list_error(tenant, exc)

    return app


def run() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "fake-tenant")
    tls = settings.fake_tenant_tls_certfile is not None
    log.info(
        "fake Netskope tenant starting",
        extra={
            "url": f"{'https' if tls else 'http'}://{settings.fake_tenant_host}:{settings.fake_tenant_port}",
            "state": "in memory only",
        },
    )
    uvicorn.run(
        create_app(settings),
        host=settings.fake_tenant_host,
        port=settings.fake_tenant_port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        ssl_certfile=settings.fake_tenant_tls_certfile,
        ssl_keyfile=settings.fake_tenant_tls_keyfile,
        # Injected timeouts hold answers for long: do not let them hold up a shutdown.
        timeout_graceful_shutdown=3,
    )


if __name__ == "__main__":
    run()
