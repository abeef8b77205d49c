from __future__ import annotations

import pytest

from jitadmin.core.errors import ValidationFailedError
from jitadmin.core.policy import CustomerPolicy, GrantRequest, check_duration, validate_request

KNOWN = ("m365", "ad")  # what the connector registry holds
POLICY = CustomerPolicy(frozenset({"m365"}), KNOWN)


def request(**changes: object) -> GrantRequest:
    values: dict[str, object] = {
        "customer": "pedroaviary", "identity_provider": "m365", "ticket_id": "48211",
        "duration_minutes": 60, "reason": "Reset the CA policy for the CFO",
    }  # fmt: skip
    values.update(changes)
    return GrantRequest(**values)  # type: ignore[arg-type]


def fields_of(error: ValidationFailedError) -> dict[str, str]:
    return {p.field: p.rule for p in error.problems}


def test_a_good_request_passes() -> None:
    validate_request(request(), POLICY)


@pytest.mark.parametrize("minutes", [0, -5, 481, 10_000])
def test_duration_outside_bounds_names_the_field(minutes: int) -> None:
    with pytest.raises(ValidationFailedError) as caught:
        validate_request(request(duration_minutes=minutes), POLICY)
    assert fields_of(caught.value) == {"duration_minutes": "must be between 1 and 480 minutes"}


@pytest.mark.parametrize("minutes", [1, 480])
def test_duration_bounds_are_inclusive(minutes: int) -> None:
    validate_request(request(duration_minutes=minutes), POLICY)


def test_per_customer_maximum_overrides_the_default() -> None:
    tight = CustomerPolicy(frozenset({"m365"}), KNOWN, max_duration_minutes=60)
    validate_request(request(duration_minutes=60), tight)
    with pytest.raises(ValidationFailedError, match="between 1 and 60"):
        validate_request(request(duration_minutes=61), tight)
    roomy = CustomerPolicy(frozenset({"m365"}), KNOWN, max_duration_minutes=720)
    validate_request(request(duration_minutes=720), roomy)


@pytest.mark.parametrize(
    ("reason", "rule"), [("", "is required"), ("   ", "is required"), ("too short", "at least 10")]
)
def test_reason_is_required_and_long_enough(reason: str, rule: str) -> None:
    with pytest.raises(ValidationFailedError) as caught:
        validate_request(request(reason=reason), POLICY)
    assert rule in fields_of(caught.value)["reason"]


def test_unknown_identity_provider() -> None:
    with pytest.raises(ValidationFailedError) as caught:
        validate_request(request(identity_provider="okta"), POLICY)
    assert "must be one of m365, ad" in fields_of(caught.value)["identity_provider"]


def test_identity_provider_must_be_configured_for_the_customer() -> None:
    with pytest.raises(ValidationFailedError) as caught:
        validate_request(request(identity_provider="ad"), POLICY)
    assert (
        fields_of(caught.value)["identity_provider"]
        == "ad is not configured for customer pedroaviary"
    )


def test_every_broken_field_is_reported_at_once() -> None:
    with pytest.raises(ValidationFailedError) as caught:
        validate_request(request(duration_minutes=0, reason="x", ticket_id=" "), POLICY)
    assert set(fields_of(caught.value)) == {"duration_minutes", "reason", "ticket_id"}


@pytest.mark.parametrize("value", [True, 1.5, "60", None])
def test_duration_must_be_a_whole_number(value: object) -> None:
    with pytest.raises(ValidationFailedError, match="whole number"):
        check_duration(value, 480)
