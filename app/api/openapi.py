"""The OpenAPI document, made to tell the truth about errors: every error answer is
``application/problem+json`` (RFC 9457) with the Problem schema, and each operation lists
the statuses it can really give (401 with API keys on, 403 for cross-site changes, 404
for ids, 413 for bodies, 422, 429 where rate-limited, 500). Checked by schemathesis
(tests/api/test_schema_fuzz.py)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.errors import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, object] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

DESCRIPTIONS = {
    "400": "Bad request",
    "401": "API key missing or invalid (when API keys are on)",
    "403": "Cross-site request refused (a browser change from another origin, or made "
    "with the dashboard's cookie but without its CSRF token)",
    "404": "Not found (or another owner's)",
    "413": "Request body too large",
    "422": "Invalid request",
    "500": "Internal error",
    "503": "Database unavailable (retry after Retry-After seconds)",
}


def _problem(description: str) -> dict[str, object]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def problem_openapi(app: FastAPI) -> dict[str, object]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, item in schema.get("paths", {}).items():
        api = path.startswith("/api/")
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            wanted = set()
            if api:
                wanted |= {"401", "500", "503"}
                if "{" in path:
                    wanted.add("404")
                if method in ("post", "put", "patch", "delete"):
                    wanted |= {"403", "413"}
                if operation.get("requestBody"):
                    wanted.add("400")  # a body that cannot be decoded at all
                if operation.get("parameters") or operation.get("requestBody"):
                    wanted.add("422")
            for code in wanted - set(responses):
                responses[code] = {"description": DESCRIPTIONS[code]}
            for code, response in responses.items():
                if code[0] in "45":
                    description = response.get("description") or DESCRIPTIONS.get(code, "Error")
                    if code == "422" and description == "Validation Error":
                        description = DESCRIPTIONS["422"]
                    responses[code] = _problem(description)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the problem-aware document (built once, on first request)."""

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
