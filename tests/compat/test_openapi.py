"""The provider-compatible routes in /openapi.json: each says the body it takes and the status codes its
provider documents (the seeds in shared/seeds), with schemas that resolve. The routes read their JSON by hand,
so without their decorators' help the schema would show no body at all."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from infinitetalk.api import create_app
from infinitetalk.config import Settings

APIXO = {200, 400, 401, 402, 403, 429, 500, 502, 504}  # its "HTTP errors" table
SEGMIND = {200, 400, 401, 403, 404, 406, 429, 500, 502, 504}  # "Common Error Codes"
WAVESPEED = {200}  # its page documents only `code`
RUNPOD_SUBMIT = {200, 400}  # its response examples
RUNPOD = {200}
EACHLABS = {200, 400, 401, 404, 429, "5XX"}  # its "Errors" table

#: (method, path) -> (takes a JSON or file body, the provider's documented codes)
OPERATIONS: dict[tuple[str, str], tuple[bool, set]] = {
    ("post", "/generateTask/infinitetalk"): (True, APIXO),
    ("get", "/statusTask/infinitetalk"): (False, APIXO),
    ("post", "/v1/infinite-talk"): (True, SEGMIND),
    ("post", "/v2/infinite-talk"): (True, SEGMIND),
    ("get", "/v2/requests/{request_id}/status"): (False, SEGMIND | {422}),  # FAILED is served as 422
    ("get", "/v2/requests/{request_id}"): (False, SEGMIND | {422}),
    ("post", "/api/v3/wavespeed-ai/infinitetalk"): (True, WAVESPEED),
    ("post", "/api/v3/wavespeed-ai/infinitetalk/video-to-video"): (True, WAVESPEED),
    ("post", "/api/v3/wavespeed-ai/infinitetalk/multi"): (True, WAVESPEED),
    ("post", "/api/v3/wavespeed-ai/infinitetalk-fast"): (True, WAVESPEED),
    ("post", "/api/v3/wavespeed-ai/infinitetalk-fast/multi"): (True, WAVESPEED),
    ("post", "/api/v3/wavespeed-ai/infinitetalk-fast/video-to-video-multi"): (True, WAVESPEED),
    ("get", "/api/v3/predictions/{prediction_id}/result"): (False, WAVESPEED),
    ("post", "/api/v3/media/uploads"): (True, WAVESPEED),
    ("put", "/api/v3/media/uploads/{upload_id}"): (True, WAVESPEED),
    ("post", "/api/v3/media/upload/binary"): (True, WAVESPEED),
    ("post", "/v2/infinitetalk/run"): (True, RUNPOD_SUBMIT),
    ("post", "/v2/infinitetalk/runsync"): (True, RUNPOD_SUBMIT),
    ("get", "/v2/infinitetalk/status/{job_id}"): (False, RUNPOD),
    ("post", "/v2/infinitetalk/cancel/{job_id}"): (False, RUNPOD),
    ("get", "/v2/infinitetalk/health"): (False, RUNPOD),
    ("post", "/v1/prediction/"): (True, EACHLABS),
    ("get", "/v1/prediction/{prediction_id}"): (False, EACHLABS),
}

#: JSON bodies: (method, path, where the input fields are) -> (the documented fields, the required ones).
BODIES = {
    ("post", "/generateTask/infinitetalk", "input"): (
        {"mode", "image_urls", "audio_urls", "prompt", "seed", "resolution"}, {"mode", "image_urls", "audio_urls"}),
    ("post", "/generateTask/infinitetalk", ""): ({"request_type", "callback_url", "provider", "input"}, {"input"}),
    ("post", "/v2/infinite-talk", ""): (
        {"prompt", "image", "audio", "base64", "fps", "resolution", "seed"}, {"prompt", "image", "audio"}),
    ("post", "/api/v3/wavespeed-ai/infinitetalk", ""): (
        {"audio", "image", "mask_image", "prompt", "resolution", "seed", "enable_sync_mode"}, {"audio", "image"}),
    ("post", "/api/v3/wavespeed-ai/infinitetalk-fast", ""): (
        {"audio", "image", "mask_image", "prompt", "resolution", "seed", "enable_sync_mode"}, {"audio", "image"}),
    ("post", "/api/v3/wavespeed-ai/infinitetalk-fast/video-to-video-multi", ""): (
        {"video", "left_audio", "right_audio", "order", "prompt", "resolution", "seed", "enable_sync_mode"},
        {"video", "left_audio", "right_audio"}),
    ("post", "/v2/infinitetalk/runsync", "input"): (
        {"prompt", "image", "audio", "size", "enable_safety_checker"}, {"prompt", "image", "audio", "size"}),
    ("post", "/v1/prediction/", ""): ({"model", "version", "input", "webhook_url"}, {"model", "input"}),
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi-data")))
    # the route /docs and the SDK generators read; it needs no runtime, so the lifespan is not started
    response = TestClient(app).get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        prefix = "#/components/schemas/"
        assert node["$ref"].startswith(prefix), node["$ref"]
        name = node["$ref"][len(prefix):]
        assert name in schema["components"]["schemas"], f"{name} is referenced but not in components"
        node = schema["components"]["schemas"][name]
    return node


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [
            ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_every_compat_operation_is_listed(schema: dict) -> None:
    compat = {(method, path) for path, item in schema["paths"].items() for method, operation in item.items()
              if any(tag.startswith("compat") for tag in operation.get("tags", []))}
    assert compat == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), list(OPERATIONS), ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_body_and_documented_codes(schema: dict, method: str, path: str) -> None:
    operation = schema["paths"][path][method]
    takes_body, documented = OPERATIONS[(method, path)]
    assert ("requestBody" in operation) is takes_body
    if takes_body:
        content = operation["requestBody"]["content"]
        assert operation["requestBody"]["required"] is True
        for media in content.values():
            assert _resolve(schema, media["schema"]), f"{method} {path}: an empty body schema"
    codes = set(operation["responses"])
    missing = {str(code) for code in documented} - codes
    assert not missing, f"{method} {path} does not document {sorted(missing)}"
    assert {"400", "404"} <= codes, "bad input and unknown ids are answered by every provider route"
    if not path.startswith("/v2/requests/"):
        assert "422" not in codes, "bad input is a 400 here; FastAPI's default 422 must not show"
    ok = operation["responses"]["200"]["content"]
    assert ok, f"{method} {path}: the 200 answer has no shape"
    for media in ok.values():
        _resolve(schema, media["schema"])


@pytest.mark.parametrize(("method", "path", "inner"), list(BODIES), ids=[f"{m} {p}" for m, p, _ in BODIES])
def test_request_fields_follow_the_provider(schema: dict, method: str, path: str, inner: str) -> None:
    body = _resolve(schema, schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"])
    if inner:
        body = _resolve(schema, body["properties"][inner])
    fields, required = BODIES[(method, path, inner)]
    assert set(body["properties"]) == fields
    assert set(body.get("required", [])) == required


def test_every_reference_resolves(schema: dict) -> None:
    for ref in _refs(schema):
        _resolve(schema, {"$ref": ref})


def test_the_documented_enums(schema: dict) -> None:
    components = schema["components"]["schemas"]
    assert components["segmind.InfiniteTalkRequest"]["properties"]["resolution"]["enum"] == ["480p", "576p", "720p"]
    fps = components["segmind.InfiniteTalkRequest"]["properties"]["fps"]
    assert (fps["minimum"], fps["maximum"], fps["default"]) == (16, 30, 25)
    assert components["runpod.InputDoc"]["properties"]["size"]["enum"] == ["480p", "720p"]
    states = components["apixo.TaskData"]["properties"]["state"]["enum"]
    assert states == ["pending", "processing", "success", "failed"]
    models = components["eachlabs.CreatePredictionRequest"]["properties"]["model"]["enum"]
    assert "infinitalk-video-to-video" in models
