"""The API's OpenAPI document, from the app in process (no database, no Kafka): every operation declares
the schema of its success answer and its error answers, and every protected operation names the bearer
scheme with the scope it needs, so Swagger UI can authorize and a client (or schemathesis) can check
every answer."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from ingest_api.main import create_app

SCOPES = {"me", "api", "cte_read", "cte_write", "settings_read", "settings_write"}
PUBLIC = {("post", "/api/auth")}


@cache
def document() -> dict[str, Any]:
    spec: dict[str, Any] = create_app().openapi()
    return spec


def operations() -> list[tuple[str, str]]:
    return [(method, path) for path, ops in document()["paths"].items() for method in ops]


def operation(method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = document()["paths"][path][method]
    return found


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document()["components"]["schemas"][schema["$ref"].removeprefix("#/components/schemas/")]
    return schema


def typed(schema: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    """A schema that says what the answer holds, all the way down: objects with named fields (open to
    more, or closed when they have none), lists and maps of typed values, scalars. Not an open object
    without fields, and not the empty schema of ``Any``."""
    ref = schema.get("$ref")
    if ref is not None:
        return ref in seen or typed(resolve(schema), seen | {ref})
    if "anyOf" in schema:
        return all(typed(s, seen) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array":
        return typed(schema.get("items", {}), seen)
    if kind == "object":
        fields = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if isinstance(extra, dict) and not typed(extra, seen):
            return False
        return (bool(fields) or extra is not True) and all(typed(f, seen) for f in fields.values())
    return kind in ("string", "integer", "number", "boolean", "null")


def successes(op: dict[str, Any]) -> list[dict[str, Any]]:
    """Every 2xx answer: one, or for the indicator writes also the 202 (accepted, not yet visible)."""
    codes = [code for code in op["responses"] if code.startswith("2")]
    assert len(codes) == 1 or sorted(codes) == ["201", "202"], codes
    return [op["responses"][code] for code in codes]


def test_the_document_has_a_bearer_scheme_and_the_password_flow() -> None:
    schemes = document()["components"]["securitySchemes"]
    assert set(schemes) == {"bearer", "oauth2"}
    assert (schemes["bearer"]["type"], schemes["bearer"]["scheme"]) == ("http", "bearer")
    # Swagger UI's Authorize button signs a user in at /api/auth with a username and password.
    password = schemes["oauth2"]["flows"]["password"]
    assert password["tokenUrl"] == "/api/auth"
    assert set(password["scopes"]) == SCOPES
    assert len(operations()) >= 44


@pytest.mark.parametrize(("method", "path"), operations())
def test_every_operation_declares_its_answer(method: str, path: str) -> None:
    for answer in successes(operation(method, path)):
        schema = answer["content"]["application/json"]["schema"]
        assert typed(schema), schema


@pytest.mark.parametrize(("method", "path"), operations())
def test_every_operation_declares_its_errors_and_security(method: str, path: str) -> None:
    op = operation(method, path)
    codes = {"400", "401", "403", "404", "422", "503"} | ({"409", "413"} if method != "get" else set())
    assert codes <= set(op["responses"])
    for code in codes:
        schema = resolve(op["responses"][code]["content"]["application/json"]["schema"])
        assert schema["title"] == ("Unprocessable" if code == "422" else "Error")
        assert "detail" in schema["required"]
    # An outage of Kafka or PostgreSQL: the detail names it, Retry-After says when to try again.
    unavailable = op["responses"]["503"]
    assert unavailable["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert "Kafka or PostgreSQL" in unavailable["description"]
    if (method, path) in PUBLIC:
        assert "security" not in op
        assert "Retry-After" in op["responses"]["401"]["headers"]
    else:
        # Either scheme is enough (alternatives), each naming the one scope the operation needs.
        bearer, oauth2 = op["security"]
        assert (list(bearer), list(oauth2)) == (["bearer"], ["oauth2"])
        assert len(bearer["bearer"]) == 1
        assert bearer["bearer"] == oauth2["oauth2"]
        assert bearer["bearer"][0] in SCOPES


def test_probes_are_outside_the_document() -> None:
    assert not {"/healthz", "/readyz"} & set(document()["paths"])


def test_typed_tells_a_model_from_an_open_object() -> None:
    assert typed({"$ref": "#/components/schemas/Configuration"})
    assert typed({"type": "array", "items": {"$ref": "#/components/schemas/Rule"}})
    assert typed({"$ref": "#/components/schemas/Empty"})
    assert typed({"type": "object", "additionalProperties": {"type": "integer"}})
    assert not typed({"title": "Response"})
    assert not typed({"type": "object", "additionalProperties": True})
    assert not typed({"type": "array", "items": {"type": "object", "additionalProperties": True}})
    assert not typed({"type": "object", "properties": {"parameters": {"type": "object"}}})
