"""On-prem AD through the API, the worker and a real Samba AD DC: request → active → expiry →
revoked, then a second grant for the same technician re-enabling the same account.

What a technician and a domain administrator would see is checked on the DC itself: logging on
with the one-time password, group membership, accountExpires, and the old password failing
after the revocation even when someone enables the account again by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from jitadmin.adapters.clock import ManualClock
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.entrypoints.cli import cli as cli_app

from support.ad import DcUser, SambaDc, unique_requester
from support.config import SECRET_KEY
from support.system import System, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]
GRACE = timedelta(minutes=5)  # accountExpires backstop after the grant's end (adapter default)


@dataclass
class AdWorld:
    system: System
    clock: ManualClock
    dc: SambaDc
    tech: httpx.Client  # a technician of this test only, so the domain may be shared

    def request(self, **changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "customer": "pedroaviary", "identity_provider": "ad",
            "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
            "reason": "Replace the failing DC certificate",
        }  # fmt: skip
        body.update(changes)
        response = self.tech.post("/grants", json=body)
        assert response.status_code == 202, response.text
        created: dict[str, Any] = response.json()
        return created

    def account(self, sam: str) -> DcUser:
        with self.dc.admin() as admin:
            user = admin.find(sam)
        assert user is not None, f"{sam} is not in the domain"
        return user

    def logon(self, sam: str, password: str) -> tuple[bool, str]:
        return self.dc.bind(f"{self.dc.netbios}\\{sam}", password)

    def notes(self, text: str) -> list[str]:
        return [n for n in self.system.ticket_notes(PEDRO.open_ticket_ids[0]) if text in n]


def connect_ad(system: System, dc: SambaDc) -> list[str]:
    with system.client("admin") as admin:
        saved = admin.put("/customers/pedroaviary/connections/ad", json=dc.api_settings())
        assert saved.status_code == 200, saved.text
        assert "bind_password" not in saved.text
        assert dc.admin_password not in saved.text
        tested = admin.post("/customers/pedroaviary/connections/ad/test")
        assert tested.status_code == 200, tested.text
        findings: list[str] = tested.json()["findings"]
    return findings


def new_technician(system: System) -> httpx.Client:
    with system.client("admin") as admin:
        created = admin.post(
            "/users", json={"username": unique_requester(), "role": "technician"}
        ).json()
    return httpx.Client(
        base_url=f"{system.url}/api/v1",
        headers={"Authorization": f"Bearer {created['token']}"},
        timeout=30,
    )


@pytest.fixture
def ad_world(tmp_path: Path, samba_dc: SambaDc) -> Iterator[AdWorld]:
    # Simulated time starts at the real now: the DC judges accountExpires by its own clock.
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    system = start_system(tmp_path, clock=clock)
    try:
        connect_ad(system, samba_dc)
        with new_technician(system) as tech:
            yield AdWorld(system, clock, samba_dc, tech)
    finally:
        stop_system(system)


def test_connection_test_through_the_api(tmp_path: Path, samba_dc: SambaDc) -> None:
    system = start_system(tmp_path)
    try:
        findings = connect_ad(system, samba_dc)
        with samba_dc.admin() as admin:
            assert f"Domain Admins (RID 512): {admin.domain_admins_dn()}" in findings
        assert "may change the members of Domain Admins" in findings
        with system.client() as api:
            customers = api.get("/customers").json()["items"]
        pedro = next(c for c in customers if c["slug"] == "pedroaviary")
        assert "ad" in pedro["identity_providers"]
        # A connection that cannot work is reported, not saved silently as fine.
        with system.client("admin") as admin:
            broken = {**samba_dc.api_settings(), "bind_password": "Not-the-password-1"}
            admin.put("/customers/pedroaviary/connections/ad", json=broken).raise_for_status()
            tested = admin.post("/customers/pedroaviary/connections/ad/test")
        assert tested.status_code == 503
        assert tested.json()["detail"] == (
            "connection test failed: the server refused the credentials or the settings"
        )
        assert "Not-the-password-1" not in tested.text
    finally:
        stop_system(system)


def test_the_cli_sets_and_tests_the_ad_connection(tmp_path: Path, samba_dc: SambaDc) -> None:
    system = start_system(tmp_path)
    env = {
        "JITADMIN_DATA_DIR": str(tmp_path),
        "JITADMIN_DATABASE_URL": system.app.settings.effective_database_url,
        "JITADMIN_SECRET_KEY": SECRET_KEY,
    }
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(samba_dc.ca_pem)
    try:
        saved = cli(
            "connections", "set-ad", "pedroaviary", "--url", samba_dc.url,
            "--bind-user", samba_dc.admin_upn, "--bind-password-file", "-",
            "--ca-pem-file", str(ca_file), "--discover-dcs", "--protected-users",
            env=env, stdin=samba_dc.admin_password + "\n",
        )  # fmt: skip
        assert saved.exit_code == 0, saved.output
        assert samba_dc.admin_password not in saved.stdout
        settings = json.loads(saved.stdout)["settings"]
        assert settings["discover_dcs"] is True and settings["protected_users"] is True
        refused = cli(
            "connections", "set-ad", "pedroaviary", "--url", samba_dc.url,
            "--bind-user", samba_dc.admin_upn, "--bind-password-file", "-",
            "--other-dcs", "http://dc2.example.local", env=env, stdin="x\n",
        )  # fmt: skip
        assert refused.exit_code == 1 and str(refused.exception).startswith(
            "other_dcs: 'http://dc2.example.local' must be ldaps://"
        )
        tested = cli("connections", "test", "pedroaviary", "ad", env=env)
        assert tested.exit_code == 0, tested.output
        assert "ok: may change the members of Domain Admins" in tested.stdout.splitlines()
        with system.client() as api:
            customers = api.get("/customers").json()["items"]
        assert (
            "ad" in next(c for c in customers if c["slug"] == "pedroaviary")["identity_providers"]
        )
    finally:
        stop_system(system)


def cli(*args: str, env: dict[str, str], stdin: str = "") -> Result:
    """The command line in-process (a subprocess would spend seconds importing)."""
    return CliRunner().invoke(cli_app, list(args), env=env, input=stdin)


def test_ad_grant_lifecycle_and_a_second_grant_re_enabling_the_account(
    ad_world: AdWorld,
) -> None:
    world = ad_world
    created = world.request()
    sam, password = created["username"], created["password"]
    assert len(sam) <= 20
    active = world.system.wait_state(created["id"], "active")

    # The technician can log on with the one-time password, as a Domain Admin.
    assert world.logon(sam, password) == (True, "")
    with world.dc.admin() as admin:
        admins_dn = admin.domain_admins_dn().lower()
        admins_sid = f"{admin.domain_sid()}-512"
    user = world.account(sam)
    assert admins_dn in user.member_of and admins_sid in user.group_sids
    expires_at = datetime.fromisoformat(active["expires_at"])
    assert user.account_expires is not None
    assert abs(user.account_expires - (expires_at + GRACE)) < timedelta(seconds=1)
    granted = wait_for(
        lambda: world.notes(f"The tech account {sam} is now enabled"), what="the grant note"
    )
    assert len(granted) == 1
    assert "Domain Admins" in granted[0]
    assert f"jitadmin:{created['id']}:granted" in granted[0]
    assert password not in "".join(world.system.ticket_notes(PEDRO.open_ticket_ids[0]))

    # Expiry: out of Domain Admins, disabled, and the old password is dead.
    world.clock.advance(timedelta(minutes=31))
    revoked = world.system.wait_state(created["id"], "revoked")
    assert revoked["revoked_at"] is not None
    user = world.account(sam)
    assert admins_dn not in user.member_of and admins_sid not in user.group_sids
    assert not user.enabled
    assert not world.logon(sam, password)[0]
    with world.dc.admin() as admin:
        admin.set(user.dn, userAccountControl="512")  # someone enables it by hand
    bound, message = world.logon(sam, password)
    assert not bound and "data 52e" in message  # wrong password, not merely disabled
    revoke_notes = wait_for(
        lambda: world.notes(f"jitadmin:{created['id']}:revoked"), what="the revoke note"
    )
    assert len(revoke_notes) == 1
    assert f"The tech account {sam} has been removed from Domain Admins" in revoke_notes[0]
    assert "disabled, and its password reset" in revoke_notes[0]

    # The next grant re-enables the very same account, with a new password.
    second = world.request(ticket_id=PEDRO.open_ticket_ids[1])
    assert second["username"] == sam and second["password"] != password
    world.system.wait_state(second["id"], "active")
    again = world.account(sam)
    assert again.guid == user.guid
    assert again.enabled and admins_dn in again.member_of
    assert world.logon(sam, second["password"]) == (True, "")
    assert not world.logon(sam, password)[0]

    assert world.tech.post(f"/grants/{second['id']}/revoke").status_code == 202
    world.system.wait_state(second["id"], "revoked")
    final = world.account(sam)
    assert not final.enabled and admins_dn not in final.member_of
    assert not world.logon(sam, second["password"])[0]
    kinds = [e["kind"] for e in world.system.grant(second["id"])["events"]]
    for step in ("account.account_reused", "account.verified_granted", "account.password_reset"):
        assert step in kinds


def test_extending_an_ad_grant_moves_the_dc_backstop(ad_world: AdWorld) -> None:
    world = ad_world
    created = world.request()
    active = world.system.wait_state(created["id"], "active")
    extended = world.tech.post(f"/grants/{created['id']}/extend", json={"minutes": 20})
    assert extended.status_code == 200, extended.text
    new_end = datetime.fromisoformat(extended.json()["expires_at"])
    assert new_end - datetime.fromisoformat(active["expires_at"]) == timedelta(minutes=20)
    user = world.account(created["username"])
    assert user.account_expires is not None
    assert abs(user.account_expires - (new_end + GRACE)) < timedelta(seconds=1)
    wait_for(lambda: world.notes(f"jitadmin:{created['id']}:extended-1"), what="extend note")

    # With the DC down the extension is refused and nothing changes.
    world.dc.stop()
    try:
        refused = world.tech.post(f"/grants/{created['id']}/extend", json={"minutes": 10})
        assert refused.status_code == 503
        assert world.system.grant(created["id"])["expires_at"] == extended.json()["expires_at"]
    finally:
        world.dc.start()
    assert world.tech.post(f"/grants/{created['id']}/revoke").status_code == 202
    world.system.wait_state(created["id"], "revoked")
