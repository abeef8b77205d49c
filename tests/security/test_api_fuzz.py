"""Schemathesis against /openapi.json: no server error, every error answer is problem+json.

Bounded and reproducible: at most 25 examples per operation, derandomized. Runs as an admin
(the role that reaches every operation) against a whole jitadmin with the emulators.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from jitadmin.entrypoints.api.app import create_app
from jitadmin.ports import User
from jitadmin.services import console

from support.system import System, start_system, stop_system


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    system = start_system(
        tmp, with_worker=False, reveal_limit_per_hour=100_000, reveal_limit_global_per_hour=100_000
    )
    yield system
    stop_system(system)


SETTINGS = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _header(headers: Any, name: str) -> str:
    value = headers.get(name) or ""
    return str(value[0] if isinstance(value, list) else value)


def check(case: Any, token: str) -> None:
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    status = response.status_code
    body = response.text
    where = f"{case.method} {case.formatted_path}"
    if status >= 500:
        # A connected system refusing fuzzed settings is a 503 the API means; nothing else.
        assert status == 503, f"{where}: {status} {body[:300]}"
        assert response.json()["title"] == "Upstream unavailable", body[:300]
    if status >= 400:
        content_type = _header(response.headers, "content-type")
        assert content_type == "application/problem+json", f"{where}: {status} {content_type}"
        problem = response.json()
        assert problem["status"] == status and problem["title"] and "detail" in problem, where


def test_no_server_errors_and_problem_json(fuzzed: System) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzzed.app))
    ctx, admin_user = fuzzed.app.ctx, User("admin", "admin")
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        operations += 1

        @given(case=operation.as_strategy())
        @SETTINGS
        def run(case: Any) -> None:
            # A fresh token per call: the fuzzer may well revoke the one it was given.
            check(case, console.issue_token(ctx, admin_user, "admin"))

        try:
            run()
        except AssertionError as error:
            failures.append(f"{operation.method.upper()} {operation.path}: {error}")
    assert operations >= 20
    assert not failures, "\n".join(failures)
