"""services/second_factor.py and the sign-in on the fakes: enrolment, codes good once, recovery
codes good once, the enrolment a required role is held to; with a ManualClock for time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from jitadmin.core import totp
from jitadmin.core.errors import ConflictError, SignInFailedError, ValidationFailedError
from jitadmin.ports import AuditQuery
from jitadmin.services import admin, second_factor, sessions

from support.services import ROOT, ServiceWorld

POLICY = sessions.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
NAME = "breakglass"


def _admin(services: ServiceWorld) -> admin.NewUser:
    return admin.add_user(services.ctx, ROOT, username=NAME, role="admin")


def _code(services: ServiceWorld, secret: str) -> str:
    return totp.code_at(secret, services.clock.now().timestamp())


def _enrolled(services: ServiceWorld) -> tuple[admin.NewUser, str, list[str]]:
    new = _admin(services)
    started = second_factor.start_enrolment(services.ctx, new.user)
    codes = second_factor.confirm_enrolment(services.ctx, new.user, _code(services, started.secret))
    services.advance(seconds=30)  # the confirming code's step is used up
    return new, started.secret, codes


def _sign_in(services: ServiceWorld, password: str, code: str = "") -> sessions.SignedIn:
    return sessions.sign_in(services.ctx, NAME, password, POLICY, code=code)


def test_enrolment_shows_the_secret_and_uri_and_needs_a_right_first_code(
    services: ServiceWorld,
) -> None:
    new = _admin(services)
    started = second_factor.start_enrolment(services.ctx, new.user)
    assert started.uri.startswith("otpauth://totp/jitadmin%3Abreakglass?secret=" + started.secret)
    assert not second_factor.enrolled(services.ctx, NAME)
    with pytest.raises(ValidationFailedError) as wrong:
        second_factor.confirm_enrolment(services.ctx, new.user, "000000")
    assert [p.field for p in wrong.value.problems] == ["code"]
    codes = second_factor.confirm_enrolment(services.ctx, new.user, _code(services, started.secret))
    assert len(codes) == 10 and len(set(codes)) == 10
    assert second_factor.enrolled(services.ctx, NAME)
    with pytest.raises(ConflictError):  # a second enrolment needs a reset first
        second_factor.start_enrolment(services.ctx, new.user)
    with services.ctx.uow() as uow:
        stored = uow.second_factors.get(NAME)
        trail = str([e.data for e in uow.audit.search(AuditQuery(), 1000)])
    assert stored is not None and started.secret not in stored.secret_sealed
    assert all(c not in str(stored) and c not in trail for c in codes)


def test_an_enrolled_user_signs_in_only_with_a_right_unused_code(services: ServiceWorld) -> None:
    new, secret, _ = _enrolled(services)
    for missing_or_wrong in ("", "123456", "not-a-code"):
        with pytest.raises(SignInFailedError):
            _sign_in(services, new.password, missing_or_wrong)
    code = _code(services, secret)
    _sign_in(services, new.password, code)
    with pytest.raises(SignInFailedError):  # the same code again, within its 30 seconds
        _sign_in(services, new.password, code)
    services.advance(seconds=30)
    _sign_in(services, new.password, _code(services, secret))
    with services.ctx.uow() as uow:
        events = [(e.kind, e.data) for e in uow.audit.search(AuditQuery(), 1000)]
    assert [d.get("second_factor") for k, d in events if k == "auth.signed_in"] == ["totp"] * 2
    whys = [d["why"] for k, d in events if k == "auth.sign_in_failed"]
    assert whys == ["wrong, reused or missing second factor"] * 4


def test_a_recovery_code_works_once(services: ServiceWorld) -> None:
    new, _, codes = _enrolled(services)
    _sign_in(services, new.password, codes[0].upper())
    with pytest.raises(SignInFailedError):
        _sign_in(services, new.password, codes[0])
    _sign_in(services, new.password, codes[1])
    assert second_factor.recovery_codes_left(services.ctx, NAME) == 8


def test_a_right_code_with_a_wrong_password_is_refused(services: ServiceWorld) -> None:
    _, secret, _ = _enrolled(services)
    with pytest.raises(SignInFailedError):
        _sign_in(services, "wrong-password", _code(services, secret))


def test_a_required_role_without_a_second_factor_must_enrol(services: ServiceWorld) -> None:
    services.ctx.security = replace(services.ctx.security, totp_required_roles=("admin",))
    new = _admin(services)
    signed = _sign_in(services, new.password)
    found = sessions.resolve(services.ctx, signed.session_id, POLICY)
    assert found is not None and found.must_enrol
    tech = admin.add_user(services.ctx, ROOT, username="tech.x", role="technician")
    other = sessions.sign_in(services.ctx, "tech.x", tech.password, POLICY)
    resolved = sessions.resolve(services.ctx, other.session_id, POLICY)
    assert resolved is not None and not resolved.must_enrol
    started = second_factor.start_enrolment(services.ctx, new.user)
    second_factor.confirm_enrolment(services.ctx, new.user, _code(services, started.secret))
    after = sessions.resolve(services.ctx, signed.session_id, POLICY)
    assert after is not None and not after.must_enrol
