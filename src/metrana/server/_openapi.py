"""The OpenAPI document, generated from the route table and the shared msgspec types."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .. import __version__
from ..api._routes import API_PREFIX, INGEST_PATH, PROTOBUF_CONTENT_TYPE, ROUTES
from ..api._types import ErrorResponse

_REF = "#/components/schemas/{name}"


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for every route, with request and response schemas and error answers."""
    types = {ErrorResponse}
    for route in ROUTES:
        types.update(tp for tp in (route.request, route.response) if tp is not None)
    ordered = sorted(types, key=repr)
    schemas, components = msgspec.json.schema_components(ordered, ref_template=_REF)
    ref = dict(zip(ordered, schemas, strict=True))
    error = {"content": {"application/json": {"schema": ref[ErrorResponse]}}}
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        parameters: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string"} if name == "metric_name" else _ID_SCHEMA,
            }
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        parameters += _query_parameters(route.query)
        operation: dict[str, Any] = {
            "operationId": route.name,
            "summary": route.summary or route.name.replace("_", " "),
            "parameters": parameters,
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "OK, in the envelope",
                    "content": {"application/json": {"schema": _enveloped(ref[route.response])}},
                },
                **{code: {"description": text, **error} for code, text in _ERRORS.items()},
            },
        }
        if route.method in ("POST", "PATCH", "DELETE"):
            operation["parameters"].append(
                {"name": "Idempotency-Key", "in": "header", "required": False,
                 "schema": {"type": "string", "maxLength": 200}}
            )  # fmt: skip
        if route.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref[route.request]}},
            }
        paths.setdefault(API_PREFIX + route.path, {})[route.method.lower()] = operation
    paths[API_PREFIX + INGEST_PATH] = {
        "post": {
            "operationId": "ingest_protobuf",
            "summary": "Ingest a metrana.v1.IngestBatch (used by the dispatcher)",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {PROTOBUF_CONTENT_TYPE: {"schema": {"type": "string",
                                                               "format": "binary"}}},
            },
            "responses": {
                "200": {
                    "description": "a metrana.v1.IngestResponse",
                    "content": {PROTOBUF_CONTENT_TYPE: {"schema": {"type": "string",
                                                                   "format": "binary"}}},
                },
                **{code: {"description": text, **error} for code, text in _ERRORS.items()},
            },
        }
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "Metrana", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


_ID_SCHEMA = {"type": "string", "pattern": "^[0-9]{1,18}$"}


def _enveloped(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data", "error"],
        "properties": {"data": schema, "error": {"type": "null"}},
    }


def _query_parameters(query: Any) -> list[dict[str, Any]]:
    if query is None:
        return []
    schema = msgspec.json.schema(query)
    properties = schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]["properties"]
    return [
        {"name": name, "in": "query", "required": False, "schema": prop,
         **({"style": "form", "explode": True} if prop.get("type") == "array" else {})}
        for name, prop in properties.items()
    ]  # fmt: skip


_ERRORS = {
    "400": "invalid request",
    "401": "missing, unknown, revoked or expired key",
    "403": "the key may not do this",
    "404": "not found",
    "409": "conflict",
    "413": "body too large",
    "415": "wrong content type",
    "503": "storage busy; retry",
}
