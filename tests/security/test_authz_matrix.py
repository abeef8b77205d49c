"""Authorization matrix: every route x every role x own/other grant x allowed/other customer.

The route list comes from the application itself (``app.routes``, API and web), so a new route
fails ``test_every_route_is_classified`` until it gets a row in ``RULES`` (authz_rules.py), which
says which answer each role gets on each target.

Subjects: anonymous, an admin, an admin restricted to customer A, a technician restricted to
customer A, an approver, an auditor. Grant targets: the technician's own grant in A, another
technician's grant in A, the technician's own grant in B (made before the restriction applied)
and another's grant in B.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from jitadmin.entrypoints.api.app import create_app
from jitadmin.ports import Agent, User, WebSession
from jitadmin.services import admin, grants, notifications
from jitadmin.services.sessions import session_hash

from authz_rules import OK, PUBLIC, ROLES, RULES, SIGNIN, Target, consent_return
from support.system import System, start_system, stop_system

A, B = "pedroaviary", "northwind"
TECH = "tech.a@msp.example"


def route_table(api: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the application answers, walking included routers too."""
    found: set[tuple[str, str]] = set()

    def walk(routes: Any) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
                continue
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, route.path))

    walk(api.routes)
    return found


def test_every_route_is_classified(matrix_system: Matrix) -> None:
    routes = route_table(matrix_system.api)
    assert routes - set(RULES) == set(), "new route(s): add them to RULES with their rule"
    assert set(RULES) - routes == set(), "RULES names routes the application no longer has"


# --- the system under test ---------------------------------------------------------------


@dataclass
class Matrix:
    system: System
    api: FastAPI
    users: dict[str, User]
    tokens: dict[str, str]
    grants: dict[str, str]  # target name -> grant id
    spare_user: str
    target_users: dict[str, str]  # user target name -> username (changed harmlessly)

    def session(self, role: str) -> dict[str, str]:
        """A fresh web session for ``role`` (cookie + CSRF token), made directly in the store."""
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.system.app.ctx.clock.now()
        with self.system.app.ctx.uow() as uow:
            uow.web_sessions.add(
                WebSession(
                    session_hash(self.system.app.ctx, session_id), self.users[role].username,
                    csrf, now, now,
                    now + timedelta(hours=1),
                )
            )  # fmt: skip
            uow.commit()
        return {"cookie": session_id, "csrf": csrf}

    def fresh_channel_id(self) -> str:
        """A channel of its own for each call (a DELETE by one role must not hide it from the
        next); its URL is a closed loopback port, so a test answers 'could not reach'."""
        channel = notifications.create_channel(
            self.system.app.ctx, self.users["admin"],
            notifications.ChannelIn(kind="slack", url="https://127.0.0.1:9/hook",
                                    events=("grant.active",)),
        )  # fmt: skip
        return channel.channel.id

    def fresh_agent_id(self, customer: str) -> str:
        """An agent of ``customer`` of its own for each call, put straight into the store."""
        agent = Agent(
            id=str(uuid.uuid4()), customer=customer, name="matrix", public_key="A" * 44,
            created_at=self.system.app.ctx.clock.now(), created_by="matrix",
        )  # fmt: skip
        with self.system.app.ctx.uow() as uow:
            uow.agents.add(agent)
            uow.commit()
        return agent.id

    def fresh_token_id(self) -> int:
        """A token of the spare (unrestricted) technician, put straight into the store: nobody
        may mint one for another user through the product."""
        now = self.system.app.ctx.clock.now()
        with self.system.app.ctx.uow() as uow:
            token_id = uow.api_tokens.add(self.spare_user, secrets.token_hex(32), now)
            uow.commit()
        return token_id


def _grant(system: System, requester: User, customer: str) -> str:
    world = next(c for c in system.world.customers if c.slug == customer)
    made = grants.request_grant(
        system.app.ctx, requester, customer=customer, identity_provider="m365",
        ticket_id=str(world.open_ticket_ids[0]), duration_minutes=30, reason="matrix test",
    )  # fmt: skip
    return made.grant.id


@pytest.fixture(scope="module")
def matrix_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    tmp: Path = tmp_path_factory.mktemp("matrix")
    system = start_system(
        tmp, with_worker=False, reveal_limit_per_hour=100_000, reveal_limit_global_per_hour=100_000
    )
    ctx = system.app.ctx
    root = User("admin", "admin")
    tokens = {"admin": system.users["admin"]["token"]}
    users = {"admin": root}
    for role, name, scope in (
        ("admin_A", "admin.a@msp.example", [A]),
        ("technician", TECH, [A]),
        ("approver", "approver@msp.example", None),
        ("auditor", "auditor@msp.example", None),
    ):
        kind = "admin" if role == "admin_A" else role
        new = admin.add_user(ctx, root, username=name, role=kind, customers=scope)
        users[role], tokens[role] = new.user, new.token
    other = admin.add_user(ctx, root, username="tech.b@msp.example", role="technician").user
    spare = admin.add_user(ctx, root, username="spare@msp.example", role="technician").user
    unrestricted_self = User(TECH, "technician")  # as TECH was before the restriction
    grant_ids = {
        "own_A": _grant(system, users["technician"], A),
        "other_A": _grant(system, other, A),
        "own_B": _grant(system, unrestricted_self, B),
        "other_B": _grant(system, other, B),
    }
    targets = {
        "user_A": admin.add_user(
            ctx, root, username="target.a@msp.example", role="auditor", customers=[A]
        ).user.username,
        "user_all": admin.add_user(
            ctx, root, username="target.all@msp.example", role="auditor"
        ).user.username,
    }
    yield Matrix(system, create_app(system.app), users, tokens, grant_ids, spare.username, targets)
    stop_system(system)


# --- requests ------------------------------------------------------------------------------


def _fill(path: str, target: Target, m: Matrix) -> str:
    slug = A if target.allowed else B
    filled = path.replace("{slug}", slug).replace("{kind}", "m365").replace("{name}", "m365")
    if "{grant_id}" in filled:
        filled = filled.replace("{grant_id}", m.grants[target.name])
    if "{username}" in filled:
        filled = filled.replace("{username}", m.target_users[target.name])
    if "{token_id}" in filled:
        filled = filled.replace("{token_id}", str(m.fresh_token_id()))
    if "{channel_id}" in filled:
        filled = filled.replace("{channel_id}", m.fresh_channel_id())
    if "{agent_id}" in filled:
        filled = filled.replace("{agent_id}", m.fresh_agent_id(slug))
    return filled.replace("{job_id}", "00000000-0000-4000-8000-000000000000")


def _json_body(method: str, path: str, target: Target, m: Matrix) -> dict[str, Any] | None:
    slug = A if target.allowed else B
    ticket = next(c for c in m.system.world.customers if c.slug == slug).open_ticket_ids[0]
    bodies: dict[str, dict[str, Any]] = {
        "/api/v1/customers": {"slug": "x" + secrets.token_hex(3), "name": "X", "psa_company_id": 1},
        "/api/v1/users": {"username": "u" + secrets.token_hex(4), "role": "auditor"},
        "/api/v1/notification-channels": {
            "kind": "slack", "url": "https://127.0.0.1:9/hook", "events": ["grant.active"],
        },
        "/api/v1/grants": {
            "customer": slug, "identity_provider": "m365", "ticket_id": str(ticket),
            "duration_minutes": 30, "reason": "matrix test",
        },
        # Well-formed but with a blank secret: refused by the service (after the role check),
        # so the matrix changes no configuration.
        "/api/v1/psa": {"kind": "connectwise", "base_url": "https://x.example", "private_key": " "},
        "/api/v1/customers/{slug}/connections/m365": {
            "tenant_id": "t", "client_id": "c", "client_secret": " ",
        },
        # A blank client id: refused by the service after the role check, nothing saved.
        "/api/v1/m365-app": {"client_id": " "},
        "/api/v1/m365-app/consent": {"state": "not-signed"},
        "/api/v1/customers/{slug}/connections/ad": {
            "url": "ldaps://x.example", "bind_user": "u", "bind_password": " ",
        },
    }  # fmt: skip
    if path.endswith("/extend"):
        return {"minutes": 5}
    if path.endswith("/password"):
        return {"reason": "matrix test"}
    if path.endswith("/reject"):
        return {"comment": "matrix test"}
    if path.endswith("/policy") and method == "PUT":
        return {"approvals_needed": 0}
    if method == "PATCH" and path == "/api/v1/users/{username}":
        return {"role": "auditor"}  # what the target users are already
    return bodies.get(path) if method in ("POST", "PUT", "PATCH") else None


def _form_body(path: str, target: Target, m: Matrix, csrf: str) -> dict[str, str]:
    slug = A if target.allowed else B
    ticket = next(c for c in m.system.world.customers if c.slug == slug).open_ticket_ids[0]
    forms = {
        "/request": {
            "customer": slug, "identity_provider": "m365", "ticket_id": str(ticket),
            "duration_minutes": "30", "reason": "matrix test", "password": "",
        },
        "/grants/{grant_id}/reveal": {"reveal_reason": "matrix test", "confirm": "yes"},
        "/grants/{grant_id}/extend": {"minutes": "5"},
        "/grants/{grant_id}/reject": {"comment": "matrix test"},
        # The target user's role and customers as they are: a change that changes nothing.
        "/admin/users/{username}": {"role": "auditor", "restrict": "yes", "customers": A}
        if target.allowed
        else {"role": "auditor"},
    }  # fmt: skip
    return {"csrf_token": csrf, **forms.get(path, {})}


def call(m: Matrix, role: str, method: str, path: str, target: Target) -> httpx.Response:
    url = _fill(path, target, m)
    with httpx.Client(base_url=m.system.url, timeout=30, follow_redirects=False) as client:
        if path.startswith("/api/"):
            headers = {} if role == "anonymous" else {"Authorization": f"Bearer {m.tokens[role]}"}
            body = _json_body(method, path, target, m)
            return client.request(method, url, headers=headers, json=body)
        cookies, headers, csrf = {}, {}, ""
        if role != "anonymous" and (method, path) not in PUBLIC:
            web = m.session(role)
            cookies, csrf = {"jitadmin_session": web["cookie"]}, web["csrf"]
            headers = {"X-CSRF-Token": csrf}
        client.cookies.update(cookies)
        if method == "GET":
            return client.get(url, headers=headers)
        if path.startswith("/web/api/"):
            body = {"minutes": 5} if path.endswith("/extend") else None
            return client.request(method, url, headers=headers, json=body)
        return client.post(url, headers=headers, data=_form_body(path, target, m, csrf))


def expected(role: str, method: str, path: str, target: Target) -> str | int:
    _, rule = RULES[(method, path)]
    if role == "anonymous" and (method, path) not in PUBLIC and rule is not consent_return:
        if path.startswith(("/api/", "/web/api/")):
            return 401
        return SIGNIN
    return rule(role, target)


def outcome(response: httpx.Response) -> str | int:
    status = response.status_code
    if status == 303 and response.headers.get("location", "").startswith("/signin?next="):
        return SIGNIN
    if status in (401, 403, 404, 422) or status >= 500:
        return status
    return OK


def _cases() -> Iterator[tuple[str, str, str, Target]]:
    for (method, path), (targets, _) in sorted(RULES.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        for role in ROLES:
            for target in targets:
                yield role, method, path, target


def test_authorization_matrix(matrix_system: Matrix) -> None:
    """All cases in one test (one system), reporting every mismatch at once."""
    mismatches, checked = [], 0
    for role, method, path, target in _cases():
        want = expected(role, method, path, target)
        response = call(matrix_system, role, method, path, target)
        got = outcome(response)
        # 422 counts as "let through" where a rule says OK (input refused after the checks).
        if got == want or (want == OK and got == 422):
            checked += 1
            continue
        mismatches.append(
            f"{method} {path} as {role} on {target.name}: expected {want}, got "
            f"{response.status_code} {response.text[:160]!r}"
        )
    assert not mismatches, f"{len(mismatches)} of {checked + len(mismatches)}:\n" + "\n".join(
        mismatches
    )
    assert checked > 300
