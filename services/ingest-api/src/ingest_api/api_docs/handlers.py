"""``/api/docs``: Swagger UI from the swagger-ui-py package's files (Swagger UI 5, which renders OpenAPI
3.1 documents such as ours; 4.x refuses them), served by the API itself, so the page works on an offline
or air-gapped install. Its Authorize button takes a bearer token, or a user's
username and password (the OAuth2 password flow against /api/auth)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui import __file__ as _swagger_ui_init

# The package's Swagger UI files (the directory also holds Swagger Editor's; the page loads only the UI's).
SWAGGER_UI_DIR = Path(_swagger_ui_init).parent / "static"
DOCS_URL = "/api/docs"
ASSETS_URL = f"{DOCS_URL}/assets"
OAUTH2_REDIRECT_URL = f"{DOCS_URL}/oauth2-redirect"


def install(app: FastAPI, openapi_url: str) -> None:
    """Serve the page and its assets on ``app`` (outside the OpenAPI document)."""
    app.mount(ASSETS_URL, StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            # Keep the token across reloads; no validator badge (it would call an outside service).
            swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
