"""URL parameters every service refuses before a route runs: control characters anywhere in
the path or the query (Postgres refuses NUL in text, so it would surface as a database
error), and a `contract_id` in the path that no contract can have.

Both are 422 naming the parameter, like any other malformed input; a well-formed id of a
contract that does not exist, or that the token does not list, stays a 404.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request

from shared.events import CONTRACT_ID_PATTERN
from shared.web import Problem

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CONTRACT_ID = re.compile(CONTRACT_ID_PATTERN)
PATH_PATTERNS = {"contract_id": CONTRACT_ID_PATTERN}


def refuse_malformed(request: Request) -> None:
    """An app-wide dependency (see `shared.runtime.build_app`): runs once the route is known."""
    errors = [
        _error("path", name, value)
        for name, value in request.path_params.items()
        if isinstance(value, str) and _malformed(name, value)
    ]
    errors += [
        _error("query", name, value)
        for name, value in request.query_params.multi_items()
        if CONTROL.search(name) or CONTROL.search(value)
    ]
    if errors:
        raise Problem(422, "Invalid request", "malformed URL parameters", errors=errors)


def _malformed(name: str, value: str) -> bool:
    if CONTROL.search(value):
        return True
    return name == "contract_id" and CONTRACT_ID.fullmatch(value) is None


def _error(where: str, name: str, value: str) -> dict[str, Any]:
    if CONTROL.search(name) or CONTROL.search(value):
        shown = CONTROL.sub("?", name)
        return {"loc": [where, shown], "msg": "control characters", "type": "value_error"}
    message = f"must match {PATH_PATTERNS[name]}"
    return {"loc": [where, name], "msg": message, "type": "string_pattern_mismatch"}


def document_patterns(schema: dict[str, Any]) -> dict[str, Any]:
    """Say in the OpenAPI what shape the path parameters checked above must have."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                pattern = PATH_PATTERNS.get(parameter.get("name", ""))
                if parameter.get("in") == "path" and pattern is not None:
                    parameter.setdefault("schema", {})["pattern"] = pattern
    return schema


def install(app: FastAPI) -> None:
    """Document the patterns in the app's OpenAPI (the check itself is a dependency)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_patterns(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
