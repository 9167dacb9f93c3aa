"""/docs (Swagger UI) and /redoc with no internet: their scripts and styles come from the pinned
`fastapi-offline` package (Swagger UI 5 and ReDoc 2 files, in its package data) and are served by us.
FastAPI's own pages would load them from a CDN, which leaves a blank page on a machine offline."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
#: ReDoc's bundle, served from here with its sidebar's logo pointed at a file of ours: the logo comes from
#: Redocly's CDN (no option turns it off), which the policy refuses, and each refusal logged a CSP error.
REDOC_JS = "/docs-redoc/redoc.standalone.js"
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
#: Both pages may load only what we serve.
#: Scripts: our files plus the page's own start-up code, named by its hash ({scripts}), so no other inline
#: script runs on a page that shares the playground's origin and the key Swagger UI keeps. Inline style: both
#: UIs style their elements as they draw them. blob: workers: ReDoc's search. Not framed by any other site.
POLICY = ("default-src 'self'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
          "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
          "frame-ancestors 'none'")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def install_docs(app: FastAPI) -> None:
    """Call on an app made with ``docs_url=None, redoc_url=None``."""
    folder = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(folder)), name="docs-assets")
    redoc_js = (folder / "redoc.standalone.js").read_bytes().replace(_REDOC_LOGO, f"{ASSETS}/favicon.png".encode())
    _declare_key_styles(app)
    openapi_url = app.openapi_url or "/openapi.json"
    redirect = app.swagger_ui_oauth2_redirect_url

    swagger_page = _Page(get_swagger_ui_html(
        openapi_url=openapi_url, title=f"{app.title} - API docs", oauth2_redirect_url=redirect,
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
        # validatorUrl None: Swagger UI would otherwise send the schema to validator.swagger.io
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    ))
    redoc_page = _Page(get_redoc_html(
        openapi_url=openapi_url, title=f"{app.title} - API reference", redoc_js_url=REDOC_JS,
        redoc_favicon_url=f"{ASSETS}/favicon.png", with_google_fonts=False))

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return swagger_page.response()

    if redirect:
        @app.get(redirect, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return redoc_page.response()

    @app.get(REDOC_JS, include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(redoc_js, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})


#: The two ways a key is sent, as the schema's security schemes: Swagger UI's Authorize button takes either,
#: and "Try it out" then sends it. The empty requirement keeps a key-less call valid: an `--open` server takes
#: one from this machine, and the signed file links and health checks need none.
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <your key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "X-API-Key: <your key>"},
}


def _declare_key_styles(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        schema["security"] = [{"bearer": []}, {"apiKey": []}, {}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class _Page:
    """A docs page, built once (it is the same for every request), and its policy with its inline scripts' hashes."""

    def __init__(self, page: HTMLResponse) -> None:
        self.body = bytes(page.body)
        hashes = "".join(f" 'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
                         for script in _INLINE_SCRIPT.findall(self.body.decode()))
        self.policy = POLICY.format(scripts=hashes)

    def response(self) -> HTMLResponse:
        return HTMLResponse(self.body, headers={"Content-Security-Policy": self.policy})
