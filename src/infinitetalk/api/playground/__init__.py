"""The playground at ``/``: a page over the public API, plain HTML, JS modules and CSS shipped as package data
(no build step, no CDN). It calls only the routes any client calls, with the key the person types in."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = resources.files(__name__) / "static"

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def playground() -> HTMLResponse:
    # no-cache: after an upgrade the page must not pair an old index with new modules
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


def install_playground(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/playground", StaticFiles(directory=str(STATIC)), name="playground")
