"""Interactive API docs at `/docs`, served by the service itself: Swagger UI's files come
from the fastapi-offline wheel, never from a CDN, so the page works offline.

The page runs no inline script and its Content-Security-Policy admits this origin only:
nothing injected can run, and nothing can be sent to another host. The statements
service's session cookie is HttpOnly (no script reads it), and the docs' requests are made
with `credentials: "omit"` (swagger_init.js): "Try it out" acts with the token pasted into
"Authorize", never with a portal session the browser happens to hold.
"""

from __future__ import annotations

import functools
from html import escape
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from shared.web import Problem

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# name → (package, file in it, media type)
ASSETS = {
    "swagger-ui-bundle.js": ("fastapi_offline", "static/swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": ("fastapi_offline", "static/swagger-ui.css", "text/css"),
    "favicon.png": ("fastapi_offline", "static/favicon.png", "image/png"),
    "swagger-init.js": ("shared", "swagger_init.js", "text/javascript"),
}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head><body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body></html>
"""


def router(title: str, openapi_url: str) -> APIRouter:
    """`GET /docs` and its assets, for an app whose schema is at `openapi_url`."""
    docs = APIRouter(include_in_schema=False)

    @docs.get(DOCS_PATH)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = PAGE.format(
            title=escape(f"{title} — API docs"),
            assets=escape(root + ASSETS_PATH),
            openapi=escape(root + openapi_url),
        )
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cross-Origin-Opener-Policy": "same-origin",
            },
        )

    @docs.get(ASSETS_PATH + "/{name}")
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise Problem(404, "Not found", f"no asset {name!r}")
        return Response(
            _read(name),
            media_type=ASSETS[name][2],
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    return docs


@functools.cache
def _read(name: str) -> bytes:
    """An asset's bytes, read from its package once per process."""
    package, path, _ = ASSETS[name]
    return resources.files(package).joinpath(path).read_bytes()
