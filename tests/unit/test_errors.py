"""One error vocabulary: every domain error lives in core.errors and names its own problem."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import jitadmin
from jitadmin.core import errors
from jitadmin.core.errors import (
    PROBLEM_TYPE_PREFIX,
    ConflictError,
    JitError,
    RateLimitedError,
    UnauthorizedError,
    ValidationFailedError,
)
from jitadmin.entrypoints.api.problems import problem_response


def _all_subclasses(base: type[JitError]) -> list[type[JitError]]:
    found: list[type[JitError]] = []
    for child in base.__subclasses__():
        found += [child, *_all_subclasses(child)]
    return found


def _import_everything() -> None:
    for module in pkgutil.walk_packages(jitadmin.__path__, "jitadmin."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)


def test_every_domain_error_is_defined_in_core_errors() -> None:
    _import_everything()
    outside = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _all_subclasses(JitError)
        if cls.__module__ != errors.__name__ and not cls.__module__.startswith("tests")
    ]
    assert outside == []


def test_each_class_that_names_a_problem_names_a_distinct_one() -> None:
    classes: list[type[JitError]] = [JitError, *_all_subclasses(JitError)]
    own = [cls for cls in classes if "problem_type" in vars(cls)]
    slugs = [cls.problem_type for cls in own]
    assert len(slugs) == len(set(slugs)), slugs
    for cls in own:
        assert 400 <= cls.status <= 599 and cls.title, cls
        assert cls.problem_type.replace("-", "").isalpha() and cls.problem_type.islower(), cls


def _body(error: JitError) -> dict[str, object]:
    response = problem_response(error)
    assert response.status_code == error.status
    assert response.media_type == "application/problem+json"
    parsed: dict[str, object] = json.loads(bytes(response.body))
    return parsed


def test_a_problem_carries_the_class_type_title_status_and_the_message() -> None:
    error = ConflictError("an active grant exists", existing_id="g-1")
    assert _body(error) == {
        "type": PROBLEM_TYPE_PREFIX + "conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "an active grant exists",
        "existing_grant": "g-1",
    }


def test_validation_problems_name_each_field_and_rule() -> None:
    error = ValidationFailedError.single("duration_minutes", "must be at most 480")
    body = _body(error)
    assert body["errors"] == [{"field": "duration_minutes", "rule": "must be at most 480"}]
    assert body["detail"] == "duration_minutes: must be at most 480"
    assert body["title"] == "Invalid request"


@pytest.mark.parametrize(
    ("error", "header", "value"),
    [
        (RateLimitedError("at most 3 per hour", 120), "retry-after", "120"),
        (errors.SignInThrottledError(30), "retry-after", "30"),
        (UnauthorizedError("missing bearer token"), "www-authenticate", "Bearer"),
    ],
)
def test_headers_follow_the_class(error: JitError, header: str, value: str) -> None:
    assert problem_response(error).headers[header] == value


def test_an_error_without_a_retry_hint_sends_no_retry_after() -> None:
    assert "retry-after" not in problem_response(ConflictError("busy")).headers
