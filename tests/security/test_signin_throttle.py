"""Issue 12 item 6: lockout bypass and audit flooding, attacked on SQLite and PostgreSQL.

Before: failures were counted from the newest 1 000 audit events (1 000 junk sign-ins lifted a
lockout), and empty or oversized passwords were audited before the throttle (anonymous
clients wrote ~1.3 M audit rows an hour). Now every count is one SQL COUNT, the lockout is
checked before anything is written, a lockout is audited once a window, and a global budget
closes sign-in to everyone before a flood can write more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jitadmin.adapters.clock import ManualClock
from jitadmin.core.errors import SignInFailedError, SignInThrottledError
from jitadmin.core.events import AuditEvent
from jitadmin.entrypoints.api.app import create_app
from jitadmin.ports import AuditQuery, User
from jitadmin.services import admin, sessions, signin_limits
from jitadmin.services.limits import count_recent
from jitadmin.wiring import App, build

from support.config import fast_settings

ROOT = User("root", "admin")
POLICY = sessions.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
OVERSIZED = "x" * (sessions.MAX_PASSWORD + 1)

Make = Callable[..., App]


@pytest.fixture
def make(tmp_path: Path, clock: ManualClock, database_url: str) -> Iterator[Make]:
    built: list[App] = []

    def _make(**limits: Any) -> App:
        app = build(fast_settings(tmp_path, database_url=database_url, **limits), clock=clock)
        built.append(app)
        return app

    yield _make
    for app in built:
        app.close()


def writes(app: App) -> tuple[int, int, int, int]:
    """(audit events, failed sign-ins audited, lockouts audited, counted failures)."""
    with app.ctx.uow() as uow:
        return (
            uow.audit.count(AuditQuery()).count,
            uow.audit.count(AuditQuery(kind=signin_limits.FAILED)).count,
            uow.audit.count(AuditQuery(kind=signin_limits.THROTTLED)).count,
            uow.signin_failures.counts("", "", EPOCH).everyone.count,
        )


def refused(app: App, username: str, password: str, client: str) -> int:
    """Sign in expecting the lockout; returns its Retry-After."""
    with pytest.raises(SignInThrottledError) as caught:
        sessions.sign_in(app.ctx, username, password, POLICY, client=client)
    return caught.value.retry_after_s


def failed(app: App, username: str, password: str, client: str) -> None:
    with pytest.raises(SignInFailedError) as caught:
        sessions.sign_in(app.ctx, username, password, POLICY, client=client)
    assert not isinstance(caught.value, SignInThrottledError)


def throttled_metric(app: App, scope: str) -> float:
    value = app.metrics.registry.get_sample_value(
        "jitadmin_signin_throttled_total", {"scope": scope}
    )
    return value or 0.0


def junk(i: int) -> tuple[str, str]:
    """Empty and oversized inputs, the flood that used to be audited before the throttle."""
    if i < 2:  # an empty username is one username: a few, not enough to lock it
        return ("", "pw") if i else ("   ", "")
    return f"junk{i}", "" if i % 2 else OVERSIZED


def test_over_a_thousand_junk_sign_ins_do_not_lift_a_lockout(make: Make) -> None:
    app = make(
        signin_failures_per_user=5, signin_failures_per_client=1100, signin_failures_global=5000
    )
    password = admin.add_user(app.ctx, ROOT, username="alice", role="admin").password
    for i in range(5):
        failed(app, "alice", "wrong", f"10.0.0.{i}")
    refused(app, "alice", password, "10.0.0.99")
    baseline = writes(app)
    # 1 100 junk sign-ins from one address: each is a counted (and audited) failure until the
    # address reaches its limit of 1 100 — counted exactly, far beyond the old 1 000 cap.
    for i in range(1100):
        failed(app, *junk(i), "198.51.100.9")
    refused(app, *junk(0), "198.51.100.9")
    # Junk for the locked account is refused unchecked, like anything else for it.
    refused(app, "alice", "", "203.0.113.5")
    refused(app, "alice", OVERSIZED, "203.0.113.5")
    # The lockout of the real account still holds after all that.
    refused(app, "alice", password, "203.0.113.6")
    assert writes(app) == (baseline[0] + 1101, 5 + 1100, 2, 5 + 1100)


def test_a_burst_of_throttled_attempts_writes_nothing_but_one_lockout_event(
    make: Make, clock: ManualClock
) -> None:
    app = make(signin_failures_per_user=3)
    password = admin.add_user(app.ctx, ROOT, username="bob", role="technician").password
    before = writes(app)
    for i in range(3):
        failed(app, "bob", "wrong", f"10.1.0.{i}")
    locked = writes(app)
    # Three failures and the one lockout they caused.
    assert locked == (before[0] + 4, 3, 1, 3)
    with app.ctx.uow() as uow:
        (event,) = uow.audit.search(AuditQuery(kind=signin_limits.THROTTLED))
    assert event.data["scope"] == "username" and event.data["username"] == "bob"
    assert event.data["failures"] == 3 and event.actor == "anonymous"
    burst = 200
    for i in range(burst):
        attempt = [("wrong", "10.1.1.1"), (password, "10.1.1.2"), ("", ""), (OVERSIZED, "x")]
        wait = refused(app, "bob", *attempt[i % 4])
        assert 0 < wait <= 15 * 60 + 1
    assert writes(app) == locked, "a throttled attempt wrote something"
    assert throttled_metric(app, "username") == burst
    # The next window: the lockout has lifted, and a new one is audited once again.
    clock.advance(timedelta(minutes=16))
    assert sessions.sign_in(app.ctx, "bob", password, POLICY).user.username == "bob"
    for _ in range(3):
        failed(app, "bob", "wrong", "10.1.0.1")
    for _ in range(50):
        refused(app, "bob", password, "10.1.0.1")
    _, failures, lockouts, counted = writes(app)
    assert (failures, lockouts, counted) == (6, 2, 3), "old failures are pruned, not counted"


def test_the_global_budget_stops_per_attempt_writes_for_everyone(
    make: Make, clock: ManualClock
) -> None:
    app = make(
        signin_failures_per_user=5, signin_failures_per_client=1000, signin_failures_global=10
    )
    password = admin.add_user(app.ctx, ROOT, username="carol", role="technician").password
    before = writes(app)
    # A spray from ten addresses, each well under its per-address limit.
    for i in range(10):
        failed(app, f"spray{i}", "" if i % 2 else "guess", f"192.0.2.{i}")
    spent = writes(app)
    assert spent == (before[0] + 11, 10, 1, 10)
    with app.ctx.uow() as uow:
        (event,) = uow.audit.search(AuditQuery(kind=signin_limits.THROTTLED))
    assert event.data["scope"] == "global" and event.data["failures"] == 10
    for i in range(300):
        refused(app, f"fresh{i}", ["", OVERSIZED, "guess"][i % 3], f"198.18.0.{i % 250}")
    # Closed to everyone, the right password included (else the spray could go on guessing).
    refused(app, "carol", password, "198.18.1.1")
    assert writes(app) == spent, "the flood wrote past the budget"
    assert throttled_metric(app, "global") == 301
    clock.advance(timedelta(minutes=16))
    assert sessions.sign_in(app.ctx, "carol", password, POLICY, client="198.18.1.1")


def test_a_failure_recorded_after_a_concurrent_one_reached_the_limit_writes_nothing(
    make: Make,
) -> None:
    """The attempt that passed the check before another's failure locked the account."""
    app = make(signin_failures_per_user=2)
    for _ in range(2):
        failed(app, "dave", "wrong", "10.2.0.1")
    before = writes(app)
    wait = signin_limits.record_failure(app.ctx, "dave", "10.2.0.2", "wrong password")
    assert wait is not None and wait > 0
    assert writes(app) == before


def test_concurrent_failures_never_exceed_the_limit(make: Make) -> None:
    app = make(signin_failures_per_user=4)
    threads, start = 12, threading.Barrier(12)
    outcomes: list[str] = []

    def attempt(i: int) -> None:
        start.wait()
        try:
            sessions.sign_in(app.ctx, "erin", "wrong", POLICY, client=f"10.3.0.{i}")
        except SignInThrottledError:
            outcomes.append("throttled")
        except SignInFailedError:
            outcomes.append("failed")

    running = [threading.Thread(target=attempt, args=(i,)) for i in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert sorted(outcomes) == ["failed"] * 4 + ["throttled"] * 8
    assert writes(app)[1:] == (4, 1, 4)


def test_the_web_form_answers_429_and_writes_nothing_while_locked(make: Make) -> None:
    app = make(signin_failures_per_user=2)
    password = admin.add_user(app.ctx, ROOT, username="frank", role="technician").password
    with TestClient(create_app(app)) as client:

        def post(pw: str) -> Any:
            page = client.get("/signin").text
            token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            form = {"username": "frank", "password": pw, "csrf_token": token}
            return client.post("/signin", data=form, follow_redirects=False)

        assert [post("wrong").status_code for _ in range(2)] == [401, 401]
        before = writes(app)
        for pw in ("wrong", "", OVERSIZED, password):
            answer = post(pw)
            assert answer.status_code == 429 and int(answer.headers["retry-after"]) > 0
        assert writes(app) == before


def test_rate_limit_counts_are_exact_beyond_a_thousand_events(make: Make) -> None:
    """The reveal limit counts the same way: one COUNT, however many events surround it."""
    app = make()
    now = app.ctx.clock.now()
    with app.ctx.uow() as uow:
        for i in range(1500):
            at = now - timedelta(minutes=50) + timedelta(seconds=i)
            uow.audit.append(AuditEvent("grant.password_revealed", "root", at))
            uow.audit.append(AuditEvent("grant.password_revealed", f"other{i % 3}", at))
            uow.audit.append(AuditEvent("grant.created", "root", at))
        uow.audit.append(AuditEvent("grant.password_revealed", "root", now - timedelta(hours=2)))
        uow.commit()
    with app.ctx.uow() as uow:
        since = now - timedelta(hours=1)
        mine = count_recent(uow, "grant.password_revealed", since, actor="root")
        everyone = count_recent(uow, "grant.password_revealed", since)
    assert mine == (1500, now - timedelta(minutes=50))
    assert everyone == (3000, now - timedelta(minutes=50))
