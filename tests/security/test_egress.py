"""Issue 12 item 7: admin-set URLs cannot reach loopback, private or metadata addresses.

Each attack from the security review, performed against a jitadmin whose egress policy is the
production default (``JITADMIN_EGRESS_ALLOW`` empty: public addresses only), sharing the
database of a system seeded under the tests' policy (which lists loopback for the emulators).
Saving a connection that points somewhere forbidden is a 422 naming the field and the rule, and
nothing is written (every table and the whole audit trail unchanged); a stored connection that
points somewhere forbidden is refused again when connecting; a connection test never answers
with what the remote said. A local listener records every request, so "nothing was sent" is
checked, not assumed. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from jitadmin.adapters.egress import EgressTransport
from jitadmin.core.egress import EgressPolicy, EgressRefusedError
from jitadmin.emulators.runner import serve_in_thread
from jitadmin.entrypoints.api.app import create_app
from jitadmin.ports import AuditQuery
from jitadmin.wiring import build

from support.config import fast_settings
from support.insiders import A, Insider, WebSession, sign_in, stored_state
from support.system import System, start_system, stop_system

SECRET_BODY = "internal-secret-3f9a1c"  # what an internal service would answer
REFUSED = "connection test failed: the server refused the credentials or the settings"
UNREACHABLE = "connection test failed: could not reach the server"


@dataclass
class Listener:
    """A local HTTP server answering every request with ``status`` and ``body``; records each."""

    status: int = 500
    body: str = SECRET_BODY
    requests: list[tuple[str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def start(self) -> Listener:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                listener.requests.append((self.command, self.headers.get("Host", "")))
                data = listener.body.encode()
                self.send_response(listener.status, f"Reason {SECRET_BODY}")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer  # noqa: N815 (http.server's names)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener().start()
    yield running
    running.stop()


@pytest.fixture
def seeded(tmp_path: Path, database_url: str) -> Iterator[System]:
    """Seeded under the tests' policy (loopback listed); no worker, so nothing else writes."""
    running = start_system(tmp_path, database_url=database_url, with_worker=False)
    yield running
    stop_system(running)


@pytest.fixture
def guarded(seeded: System, tmp_path: Path, database_url: str) -> Iterator[System]:
    """A second jitadmin on the same database with the default policy: public addresses only."""
    settings = fast_settings(tmp_path, database_url=database_url, egress_allow=[])
    app = build(settings, upgrade=False)
    server = serve_in_thread(create_app(app))
    yield System(seeded.world, app, None, server, seeded.users)
    server.stop()
    app.close()


def _admin_api(system: System) -> httpx.Client:
    return system.client("admin")


def _admin_web(system: System) -> tuple[httpx.Client, WebSession]:
    who = system.users["admin"]
    session = sign_in(system, Insider(who["username"], who["password"], who["token"]))
    return session.client(system), session


def _psa_body(system: System, **changes: str) -> dict[str, Any]:
    body = {k: v for k, v in system.world.psa_settings().items() if k != "admin_url"}
    return body | changes


def _refused_field(response: httpx.Response, name: str) -> str:
    assert response.status_code == 422, response.text
    rules = [e["rule"] for e in response.json()["errors"] if e["field"] == name]
    assert rules, response.text
    return str(rules[0])


def _forbidden_urls(port: int) -> list[tuple[str, str]]:
    return [
        (f"http://127.0.0.1:{port}/v4_6_release/apis/3.0/", "https"),
        (f"https://127.0.0.1:{port}/", "loopback"),
        (f"https://localhost:{port}/", "resolves to a loopback"),
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("https://[fd00:ec2::254]/", "cloud metadata"),
        ("https://10.20.30.40/", "private"),
        ("https://[::ffff:127.0.0.1]/", "loopback"),
        ("https://[fe80::1]/", "link-local"),
        ("http://psa.example.com/", "https"),  # credentials in clear to a public host
    ]


def test_psa_base_url_to_a_forbidden_address_is_refused_and_nothing_is_written(
    guarded: System, listener: Listener
) -> None:
    before = stored_state(guarded)
    with _admin_api(guarded) as api:
        for url, rule in _forbidden_urls(listener.port):
            saved = api.put("/psa", json=_psa_body(guarded, base_url=url))
            assert rule in _refused_field(saved, "base_url"), url
        halo = _psa_body(guarded, kind="halopsa", base_url="https://psa.example.com",
                         auth_url="https://169.254.169.254/auth", client_id="c",
                         client_secret="s")  # fmt: skip
        assert "cloud metadata" in _refused_field(api.put("/psa", json=halo), "auth_url")
    assert stored_state(guarded) == before
    assert listener.requests == []


def test_the_web_psa_page_refuses_a_forbidden_address_and_writes_nothing(
    guarded: System, listener: Listener
) -> None:
    web, session = _admin_web(guarded)  # signing in writes its own audit event, first
    before = stored_state(guarded)
    names = ("base_url", "company_id", "public_key", "private_key", "client_id")
    with web:
        for url in (f"https://localhost:{listener.port}/", "https://169.254.169.254/"):
            fields = {n: str(_psa_body(guarded, base_url=url)[n]) for n in names}
            saved = web.post("/admin/psa", data=session.form(kind="connectwise", **fields))
            assert saved.status_code == 422, saved.text
            assert "not reachable under the egress policy" in saved.text
    assert stored_state(guarded) == before
    assert listener.requests == []


@pytest.mark.parametrize(
    ("changes", "name", "rule"),
    [
        ({"authority_url": "https://169.254.169.254/"}, "authority_url", "cloud metadata"),
        ({"authority_url": "http://login.example.com/"}, "authority_url", "https"),
        ({"graph_url": "https://[fd00:ec2::254]/v1.0"}, "graph_url", "cloud metadata"),
        ({"graph_url": "https://192.168.1.10/v1.0"}, "graph_url", "private"),
        ({"tenant_id": "../evil"}, "tenant_id", "GUID or a domain name"),
        ({"tenant_id": "x/oauth2"}, "tenant_id", "GUID or a domain name"),
        ({"tenant_id": "contoso.com?x=1"}, "tenant_id", "GUID or a domain name"),
    ],
)
def test_m365_connection_to_a_forbidden_place_is_refused_and_nothing_is_written(
    guarded: System, changes: dict[str, str], name: str, rule: str
) -> None:
    before = stored_state(guarded)
    body = {"tenant_id": "contoso.onmicrosoft.com", "client_id": "c", "client_secret": "s"}
    with _admin_api(guarded) as api:
        saved = api.put(f"/customers/{A}/connections/m365", json=body | changes)
    assert rule in _refused_field(saved, name)
    assert stored_state(guarded) == before


def test_ad_url_to_a_forbidden_address_is_refused_and_nothing_is_written(
    guarded: System, listener: Listener
) -> None:
    web, session = _admin_web(guarded)
    before = stored_state(guarded)
    body = {"bind_user": "svc@corp.example", "bind_password": "Pa55-word-not-shown"}
    with _admin_api(guarded) as api:
        for url, rule in [
            ("ldaps://169.254.169.254", "cloud metadata"),
            ("ldap://10.0.0.5", "private"),
            (f"ldaps://localhost:{listener.port}", "resolves to a loopback"),
            ("ldaps://[::1]:636", "loopback"),
            ("https://dc.corp.example", "ldaps://"),
        ]:
            saved = api.put(f"/customers/{A}/connections/ad", json=body | {"url": url})
            assert rule in _refused_field(saved, "url"), url
            assert "Pa55-word-not-shown" not in saved.text
    with web:
        form = session.form(url="ldaps://169.254.169.254", **body)
        page = web.post(f"/admin/customers/{A}/connections/ad", data=form)
    assert page.status_code == 422 and "cloud metadata" in page.text
    assert stored_state(guarded) == before
    assert listener.requests == []


def test_a_stored_connection_to_loopback_is_refused_when_connecting(
    seeded: System, guarded: System, listener: Listener
) -> None:
    """The check runs again on every connection (a name may resolve elsewhere by then): a PSA
    saved as ``localhost`` (listed where it was saved) is never reached under the default policy,
    and neither are the seeded loopback emulators."""
    with _admin_api(seeded) as api:
        url = f"https://localhost:{listener.port}/v4_6_release/apis/3.0/"
        api.put("/psa", json=_psa_body(seeded, base_url=url)).raise_for_status()
    before = stored_state(guarded)
    with _admin_api(guarded) as api:
        psa = api.post("/psa/test")
        m365 = api.post(f"/customers/{A}/connections/m365/test")
    for tested in (psa, m365):
        assert tested.status_code == 503, tested.text
        assert tested.json()["detail"].startswith(
            "connection test failed: blocked by the egress policy: "
        )
    assert (
        "localhost is not reachable under the egress policy: it resolves to a loopback"
        in (psa.json()["detail"])
    )
    assert "must be an https URL" in m365.json()["detail"]  # the emulator: plain http
    assert listener.requests == []
    after = stored_state(guarded)
    assert {k: v for k, v in after.items() if k != "audit"} == {
        k: v for k, v in before.items() if k != "audit"
    }
    events = _new_events(guarded, len(before["audit"]))
    assert [(e.kind, e.data["outcome"]) for e in events] == [
        ("psa.tested", "blocked"),
        ("connection.tested", "blocked"),
    ]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, SECRET_BODY, REFUSED),
        (500, f'{{"message": "{SECRET_BODY}"}}', UNREACHABLE),
        (404, f"<html>{SECRET_BODY}</html>", REFUSED),
    ],
)
def test_a_psa_connection_test_never_echoes_the_remote(
    seeded: System, listener: Listener, status: int, body: str, expected: str
) -> None:
    listener.status, listener.body = status, body
    url = f"http://127.0.0.1:{listener.port}/v4_6_release/apis/3.0/"
    with _admin_api(seeded) as api:
        api.put("/psa", json=_psa_body(seeded, base_url=url)).raise_for_status()
        tested = api.post("/psa/test")
    assert tested.status_code == 503
    assert tested.json()["detail"] == expected
    assert listener.requests, "the listener was reached (loopback is listed here)"
    web, session = _admin_web(seeded)
    with web:
        page = web.post("/admin/psa/test", data=session.form())
    assert (
        page.status_code == 200 and expected.removeprefix("connection test failed: ") in page.text
    )
    _assert_never_stored_or_shown(seeded, tested.text, page.text)


def test_a_count_the_remote_made_up_is_not_echoed(seeded: System, listener: Listener) -> None:
    listener.status, listener.body = 200, f'{{"count": "{SECRET_BODY}"}}'
    url = f"http://127.0.0.1:{listener.port}/v4_6_release/apis/3.0/"
    with _admin_api(seeded) as api:
        api.put("/psa", json=_psa_body(seeded, base_url=url)).raise_for_status()
        tested = api.post("/psa/test")
    assert tested.status_code == 200, tested.text
    assert "None open tickets visible" in tested.json()["findings"]
    _assert_never_stored_or_shown(seeded, tested.text)


def test_an_m365_connection_test_never_echoes_the_remote(
    seeded: System, listener: Listener
) -> None:
    listener.status, listener.body = 400, f'{{"error": "x", "error_description": "{SECRET_BODY}"}}'
    root = f"http://127.0.0.1:{listener.port}"
    body = {"tenant_id": "contoso.onmicrosoft.com", "client_id": "c", "client_secret": "s3cr3t-x",
            "authority_url": f"{root}/login", "graph_url": f"{root}/v1.0"}  # fmt: skip
    with _admin_api(seeded) as api:
        api.put(f"/customers/{A}/connections/m365", json=body).raise_for_status()
        tested = api.post(f"/customers/{A}/connections/m365/test")
    assert tested.status_code == 503
    assert tested.json()["detail"] in (REFUSED, UNREACHABLE)
    assert listener.requests, "the token request reached the listener (loopback is listed here)"
    assert "s3cr3t-x" not in tested.text
    web, session = _admin_web(seeded)
    with web:
        page = web.post(f"/admin/customers/{A}/connections/m365/test", data=session.form())
    assert tested.json()["detail"].removeprefix("connection test failed: ") in page.text
    _assert_never_stored_or_shown(seeded, tested.text, page.text)


def test_the_transport_checks_after_resolving_and_connects_to_the_checked_address(
    listener: Listener,
) -> None:
    """No database: the transport alone. ``localhost`` is resolved, judged, and the request
    goes to that address with the name kept in ``Host`` (nothing resolves it a second time)."""
    url = f"http://localhost:{listener.port}/probe"
    with httpx.Client(transport=EgressTransport(EgressPolicy())) as refused:
        with pytest.raises(EgressRefusedError, match="https URL"):
            refused.get(url)
        with pytest.raises(EgressRefusedError, match="loopback"):
            refused.get(f"https://localhost:{listener.port}/probe")
    assert listener.requests == []
    listed = EgressPolicy.parse(["127.0.0.0/8", "::1", "localhost"])
    with httpx.Client(transport=EgressTransport(listed)) as allowed:
        assert allowed.get(url).status_code == 500
    assert listener.requests == [("GET", f"localhost:{listener.port}")]


def _new_events(system: System, known: int) -> list[Any]:
    with system.app.ctx.uow() as uow:
        return sorted(uow.audit.search(AuditQuery(), 1_000_000), key=lambda e: e.seq)[known:]


def _assert_never_stored_or_shown(system: System, *shown: str) -> None:
    for text in shown:
        assert SECRET_BODY not in text
    with system.app.ctx.uow() as uow:
        trail = repr(uow.audit.search(AuditQuery(), 1_000_000))
    assert SECRET_BODY not in trail
    assert "psa.tested" in trail or "connection.tested" in trail
