"""``/``: the web console, a single-page app built by ``make install`` from ``console/`` (npm, Vite) and
served here, on the API's origin, so it calls ``/api`` without CORS and works offline (every asset is
one of its built files). Any path outside ``/api`` that is not a file is one of the app's own routes and
gets its ``index.html``. It answers only what no route matches, and 404 under ``/api`` and to anything
but GET and HEAD, as the API did without it."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.types import Receive, Scope, Send

# Built files are named by their content hash: a browser may keep them. index.html names the current
# ones, so it is checked every time.
_IMMUTABLE = "public, max-age=31536000, immutable"
_NO_CACHE = "no-cache"
# Only the stack's own files, no inline script, never framed.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Threat Exchange</title></head>
<body><h1>The console is not built</h1><p>Run <code>make install</code> (it needs Node.js 20 and npm) and restart
the ingest-api, or use the API: <a href="/api/docs">/api/docs</a>.</p></body></html>"""


def default_directory() -> Path:
    """The build output of the repository's console/ (a source checkout; the image sets CTE_CONSOLE_DIR)."""
    return Path(__file__).resolve().parents[5] / "console" / "dist"


class Console:
    """The ASGI app mounted at ``/``: a built file, or ``index.html`` for a client route."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        under_api = path == "/api" or path.startswith("/api/")
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or under_api:
            await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
            return
        index = self.directory / "index.html"
        if not index.is_file():
            await HTMLResponse(_NOT_BUILT, status_code=503)(scope, receive, send)
            return
        wanted = (self.directory / path.lstrip("/")).resolve()
        if path != "/" and wanted.is_file() and wanted.is_relative_to(self.directory):
            cache = _IMMUTABLE if wanted.parent.name == "assets" else _NO_CACHE
            await FileResponse(wanted, headers={"Cache-Control": cache})(scope, receive, send)
            return
        if wanted.parent.name == "assets" or "." in path.rsplit("/", 1)[-1]:
            # A missing asset is a 404, not the page (a stale index.html would otherwise load HTML as a script).
            await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
            return
        headers = {"Cache-Control": _NO_CACHE, "Content-Security-Policy": _CSP}
        await FileResponse(index, headers=headers)(scope, receive, send)


def install(app: FastAPI, directory: Path | None = None) -> None:
    """Serve the console where no route of the app matches (the router's default answer, which was a 404),
    so every route, one added later included, keeps priority."""
    app.router.default = Console(directory or default_directory())
