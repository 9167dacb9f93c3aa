"""The provider routes in the OpenAPI schema.

They read their JSON by hand (after the key check, answering errors in the provider's shape), so FastAPI sees
no body and no answer shapes. Each route's decorator says them with the helpers here; the models become
components named ``<provider>.<Model>`` (two providers both have an ``InfiniteTalkInput``), which the app adds
to its schema (``components()``). A route whose path takes a fixed value (``/generateTask/{model}`` serves one
model) is shown at its concrete paths (``expand_paths``), as the provider's docs show it.
"""

from __future__ import annotations

import copy
import itertools
import re

from pydantic import BaseModel

#: ``<provider>.<Model>`` -> model, filled as the routers' decorators run.
_MODELS: dict[str, type[BaseModel]] = {}
#: The operation key that carries a route's fixed path values until ``expand_paths`` uses it.
PATH_VALUES = "x-path-values"


def ref(provider: str, model: type[BaseModel]) -> dict:
    name = f"{provider}.{model.__name__}"
    if _MODELS.setdefault(name, model) is not model:
        raise ValueError(f"two models named {name}")
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(provider: str, model: type[BaseModel], *, description: str | None = None) -> dict:
    """``openapi_extra``: a required JSON body of ``model``."""
    body: dict = {"required": True, "content": {"application/json": {"schema": ref(provider, model)}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


def answers(provider: str, table: dict[int | str, tuple[str, type[BaseModel] | dict | None]]) -> dict:
    """``responses=``: status -> (description, model or a raw ``content`` mapping or None)."""
    out: dict = {}
    for status, (description, shape) in table.items():
        response: dict = {"description": description}
        if isinstance(shape, dict):
            response["content"] = shape
        elif shape is not None:
            response["content"] = {"application/json": {"schema": ref(provider, shape)}}
        out[status] = response
    return out


def fixed_path(**values: list[str] | dict[str, dict]) -> dict:
    """``openapi_extra``: show the route once per value of these path parameters; a dict maps each value to
    what its operation adds (its own body, say)."""
    return {PATH_VALUES: values}


def merge(*extras: dict) -> dict:
    out: dict = {}
    for extra in extras:
        _deep_update(out, copy.deepcopy(extra))
    return out


def components() -> dict[str, dict]:
    """JSON schemas of every registered model, nested models under their provider's prefix too."""
    out: dict[str, dict] = {}
    for name, model in sorted(_MODELS.items()):
        provider = name.split(".", 1)[0]
        schema = model.model_json_schema(ref_template=f"#/components/schemas/{provider}." + "{model}")
        for sub, definition in schema.pop("$defs", {}).items():
            out.setdefault(f"{provider}.{sub}", definition)
        out[name] = schema
    return out


def expand_paths(schema: dict) -> None:
    """Replace each path item whose operations carry ``x-path-values`` by its concrete paths, in place."""
    paths = schema.get("paths", {})
    for path in list(paths):
        item = paths[path]
        if not any(isinstance(op, dict) and PATH_VALUES in op for op in item.values()):
            continue
        del paths[path]
        for method, operation in item.items():
            values = operation.pop(PATH_VALUES, None) if isinstance(operation, dict) else None
            if not values:
                paths.setdefault(path, {})[method] = operation
                continue
            names = list(values)
            for combo in itertools.product(*(list(values[name]) for name in names)):
                concrete, extra = path, {}
                for name, value in zip(names, combo, strict=True):
                    concrete = concrete.replace("{" + name + "}", value)
                    if isinstance(values[name], dict):
                        _deep_update(extra, copy.deepcopy(values[name][value]))
                op = copy.deepcopy(operation)
                op["parameters"] = [p for p in op.get("parameters", [])
                                    if not (p.get("in") == "path" and p.get("name") in names)]
                if not op["parameters"]:
                    del op["parameters"]
                if "operationId" in op:
                    op["operationId"] += "_" + re.sub(r"[^A-Za-z0-9]+", "_", "_".join(combo)).strip("_")
                _deep_update(op, extra)
                paths.setdefault(concrete, {})[method] = op


def _deep_update(target: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value
