"""The playground at ``/``: a page over the public API, plain HTML, JS modules and CSS shipped as package data
(no build step, no CDN). It calls only the routes any client calls, with the key the person types in."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from infinitetalk.demo import demo_inputs
from infinitetalk.errors import NotFound

STATIC = resources.files(__name__) / "static"

router = APIRouter(include_in_schema=False)

#: The page keeps the API key in localStorage, so it runs only its own files: no inline script or style, no
#: script from anywhere else (an injected one would read the key), no plugins, no <base> to re-point its
#: modules, and no framing by another site (a click there would act with the key). Pictures and speech may
#: come from any URL the person types in (and from blob: URLs of picked files); the API calls go to us only.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src * data: blob:; media-src * data: blob:; "
          "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@router.get("/", response_class=HTMLResponse)
def playground() -> HTMLResponse:
    # no-cache: after an upgrade the page must not pair an old index with new modules
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-cache", "Content-Security-Policy": POLICY})


def _sample_files() -> dict[str, tuple[Path, str]]:
    """The inputs of `infinitetalk generate --demo`."""
    portrait, speech = demo_inputs()
    return {"portrait.jpg": (portrait, "image/jpeg"), "speech.mp3": (speech, "audio/mpeg")}


@router.get("/playground/samples/{name}")
def sample(name: str) -> FileResponse:
    """A sample input for "Try a sample": the page uploads it as if the person had picked it."""
    path, media_type = _sample_files().get(name, (None, ""))
    if path is None or not path.is_file():
        raise NotFound(f"no sample named {name!r}: the samples are portrait.jpg and speech.mp3")
    return FileResponse(path, media_type=media_type, filename=name, headers={"Cache-Control": "public, max-age=3600"})


def install_playground(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/playground", StaticFiles(directory=str(STATIC)), name="playground")
