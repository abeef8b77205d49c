"""/openapi.json describes what every operation answers, and real answers match it.

Schemas are checked with jsonschema_rs (schemathesis' validator, already a dev dependency),
and each answer also round-trips through its pydantic model unchanged: no field the model
lacks, none it would add.
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
from pydantic import BaseModel

from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.entrypoints.api import responses

from support.system import System

PEDRO = CUSTOMERS[0]
PROBLEM = "application/problem+json"
METHODS = ("get", "put", "post", "delete", "patch")


def _openapi(system: System) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{system.url}/openapi.json", timeout=30).json()
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _component(document: dict[str, Any], schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = schema["$ref"].removeprefix("#/components/schemas/")
    component: dict[str, Any] = document["components"]["schemas"][name]
    return name, component


def _declared(
    document: dict[str, Any], method: str, path: str, status: int
) -> tuple[str, dict[str, Any]]:
    """The component name and the schema the document declares for this answer."""
    answer = document["paths"][path][method]["responses"][str(status)]
    media = "application/json" if status < 400 else PROBLEM
    schema: dict[str, Any] = answer["content"][media]["schema"]
    return _component(document, schema)[0], schema


def test_every_api_operation_declares_a_typed_success_answer(system: System) -> None:
    document = _openapi(system)
    api = [op for op in _operations(document) if op[1].startswith("/api/v1/")]
    assert len(api) >= 19
    untyped = []
    for method, path, operation in api:
        success = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        schemas = [r.get("content", {}).get("application/json", {}).get("schema") for r in
                   success.values()]  # fmt: skip
        typed = [
            s for s in schemas if s and "$ref" in s and _component(document, s)[1].get("properties")
        ]
        if len(success) != 1 or not typed:
            untyped.append(f"{method.upper()} {path}: {success}")
    assert untyped == []


def test_errors_are_declared_as_problem_json(system: System) -> None:
    document = _openapi(system)
    for method, path, operation in _operations(document):
        for status, answer in operation["responses"].items():
            if status[0] in "45":
                assert list(answer["content"]) == [PROBLEM], f"{method} {path} {status}"
                name = _component(document, answer["content"][PROBLEM]["schema"])[0]
                assert name == "Problem", f"{method} {path} {status}"
    # FastAPI's own 422 shape ({"detail": [...]}) is not what this API sends.
    assert "HTTPValidationError" not in document["components"]["schemas"]


def _check(document: dict[str, Any], method: str, path: str, response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    name, schema = _declared(document, method, path, response.status_code)
    body = response.json()
    root = {**schema, "components": document["components"]}
    errors = [error.message for error in jsonschema_rs.Draft202012Validator(root).iter_errors(body)]
    assert errors == [], f"{method} {path}: {errors}"
    model: type[BaseModel] = getattr(responses, name)
    assert model.model_validate(body).model_dump(mode="json", exclude_unset=True) == body


def test_real_answers_match_their_declared_schemas(system: System) -> None:
    document = _openapi(system)
    api_paths = {p.removeprefix("/api/v1"): p for p in document["paths"]}
    with system.client("technician") as tech, system.client("admin") as admin:
        requested = tech.post(
            "/grants",
            json={"customer": PEDRO.slug, "identity_provider": "m365",
                  "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
                  "reason": "OpenAPI answers check"},
        )  # fmt: skip
        assert requested.status_code == 202, requested.text
        grant_id = requested.json()["id"]
        one = f"/grants/{grant_id}"
        bad = tech.post("/grants", json={"customer": PEDRO.slug})
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
        calls = [
            ("post", "/grants", requested),
            ("post", "/grants", bad),
            ("get", "/customers", tech.get("/customers")),
            ("get", "/customers/{slug}/tickets", tech.get(f"/customers/{PEDRO.slug}/tickets")),
            ("get", "/grants", tech.get("/grants")),
            ("get", "/grants/{grant_id}", tech.get(f"/grants/{grant_id}")),
            ("get", "/grants/{grant_id}", tech.get("/grants/no-such-grant")),
            ("get", "/users", admin.get("/users")),
            ("get", "/tokens", admin.get("/tokens")),
            ("get", "/audit", admin.get("/audit", params={"grant_id": grant_id})),
            ("post", "/grants/{grant_id}/password", admin.post(f"/grants/{grant_id}/password")),
            ("get", "/customers/{slug}/policy", admin.get("/customers/northwind/policy")),
            ("put", "/customers/{slug}/policy", admin.put(
                "/customers/northwind/policy", json={"approval_required": ["m365"]}
            )),
            ("put", "/customers/{slug}/policy", admin.put(
                "/customers/northwind/policy", json={"approvals_needed": 0}
            )),
            # The grant is not pending: each answers a 409 problem.
            ("post", "/grants/{grant_id}/approve", admin.post(f"{one}/approve")),
            ("post", "/grants/{grant_id}/reject", admin.post(f"{one}/reject", json={})),
            ("post", "/grants/{grant_id}/cancel", tech.post(f"{one}/cancel")),
        ]  # fmt: skip
        waiting = tech.post(
            "/grants",
            json={"customer": "northwind", "identity_provider": "m365",
                  "ticket_id": CUSTOMERS[1].open_ticket_ids[0], "duration_minutes": 30,
                  "reason": "OpenAPI answers check"},
        )  # fmt: skip
        assert waiting.json()["state"] == "pending_approval", waiting.text
        approved = admin.post(f"/grants/{waiting.json()['id']}/approve", json={"comment": "ok"})
        assert approved.status_code == 200, approved.text
        calls += [("post", "/grants", waiting), ("post", "/grants/{grant_id}/approve", approved)]
    for method, path, response in calls:
        _check(document, method, api_paths[path], response)
    health = httpx.get(f"{system.url}/healthz", timeout=30)
    _check(document, "get", "/healthz", health)
