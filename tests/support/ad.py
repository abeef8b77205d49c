"""The real Samba AD DC the AD tests run against, as started by ``scripts/samba-dc.sh``.

The script writes its connection details to ``.run/samba-dc.env`` (``SAMBA_DC_ENV_FILE``
overrides). Without a DC the AD tests fail with instructions; they are never skipped.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ldap3 import BASE, MODIFY_REPLACE, NONE, SIMPLE, SUBTREE, Connection, Server
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from jitadmin.adapters.ad.account import filetime, from_filetime, sid_text, unicode_pwd
from jitadmin.adapters.ad.ldap import VerifiedTls, tls_context
from jitadmin.adapters.ad.provider import AdConnection

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "samba-dc.sh"
ENV_FILE = Path(os.environ.get("SAMBA_DC_ENV_FILE") or REPO / ".run" / "samba-dc.env")
# The second DC of the same domain, joined to the first (`make services-up` starts both).
SECOND_ENV_FILE = Path(os.environ.get("SAMBA_DC2_ENV_FILE") or REPO / ".run" / "samba-dc2.env")
USER_CLASSES = ["top", "person", "organizationalPerson", "user"]
DISABLED = 0x2


@contextmanager
def exclusive(name: str) -> Iterator[None]:
    """One holder at a time, across every process on this machine that uses this DC: for a
    test that changes a shared object (Domain Admins' DACL) and puts it back afterwards."""
    with (ENV_FILE.parent / f"{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def unique_requester(stem: str = "tech") -> str:
    return f"{stem}.{uuid.uuid4().hex[:6]}@msp.example"


@dataclass(frozen=True)
class DcUser:
    """An account as the DC shows it to an administrator."""

    dn: str
    raw: dict[str, list[bytes]]

    def text(self, name: str) -> str | None:
        values = self.raw.get(name) or []
        return values[0].decode() if values else None

    def number(self, name: str) -> int | None:
        value = self.text(name)
        return int(value) if value is not None else None

    @property
    def guid(self) -> bytes:
        return self.raw["objectGUID"][0]

    @property
    def uac(self) -> int:
        return self.number("userAccountControl") or 0

    @property
    def enabled(self) -> bool:
        return not self.uac & DISABLED

    @property
    def locked_out(self) -> bool:
        return bool((self.number("msDS-User-Account-Control-Computed") or 0) & LOCKED_OUT)

    @property
    def password_expired(self) -> bool:
        return bool((self.number("msDS-User-Account-Control-Computed") or 0) & PASSWORD_EXPIRED)

    @property
    def account_expires(self) -> datetime | None:
        return from_filetime(self.number("accountExpires") or 0)

    @property
    def member_of(self) -> list[str]:
        return [v.decode().lower() for v in self.raw.get("memberOf") or []]

    @property
    def group_sids(self) -> set[str]:
        return {sid_text(v) for v in self.raw.get("tokenGroups") or []}


USER_ATTRIBUTES = [
    "objectGUID",
    "sAMAccountName",
    "userPrincipalName",
    "displayName",
    "description",
    "userAccountControl",
    "accountExpires",
    "memberOf",
    "primaryGroupID",
    "adminCount",
    "employeeType",
    "info",
    "pwdLastSet",
    "lockoutTime",
    "msDS-User-Account-Control-Computed",
]
LOCKED_OUT = 0x10  # msDS-User-Account-Control-Computed
PASSWORD_EXPIRED = 0x800000


@dataclass
class DcAdmin:
    """An Administrator's LDAPS session, for arranging and inspecting the domain in tests."""

    conn: Connection
    base_dn: str

    def ok(self, done: bool) -> None:
        assert done, self.conn.result

    def find(self, sam: str) -> DcUser | None:
        self.conn.search(
            self.base_dn,
            f"(sAMAccountName={escape_filter_chars(sam)})",
            SUBTREE,
            attributes=["distinguishedName"],
        )
        found = [r for r in self.conn.response or [] if r.get("type") == "searchResEntry"]
        return self.read(str(found[0]["dn"])) if found else None

    def read(self, dn: str) -> DcUser:
        # tokenGroups is computed only on a base-scope read.
        self.conn.search(dn, "(objectClass=*)", BASE, attributes=[*USER_ATTRIBUTES, "tokenGroups"])
        entry = self.conn.response[0]
        return DcUser(str(entry["dn"]), {k: list(v) for k, v in entry["raw_attributes"].items()})

    def members(self, group_dn: str) -> list[str]:
        self.conn.search(group_dn, "(objectClass=*)", BASE, attributes=["member"])
        return [v.decode().lower() for v in self.conn.response[0]["raw_attributes"]["member"]]

    def sid_of(self, sam: str) -> str:
        self.conn.search(
            self.base_dn,
            f"(sAMAccountName={escape_filter_chars(sam)})",
            SUBTREE,
            attributes=["objectSid"],
        )
        return sid_text(self.conn.response[0]["raw_attributes"]["objectSid"][0])

    def domain_sid(self) -> str:
        self.conn.search(self.base_dn, "(objectClass=*)", BASE, attributes=["objectSid"])
        return sid_text(self.conn.response[0]["raw_attributes"]["objectSid"][0])

    def domain_admins_dn(self) -> str:
        sid = self.domain_sid()
        self.conn.search(
            self.base_dn, f"(objectSid={sid}-512)", SUBTREE, attributes=["distinguishedName"]
        )
        return str(self.conn.response[0]["dn"])

    def add_user(
        self, sam: str, *, ou: str | None = None, password: str | None = None, **attributes: Any
    ) -> str:
        dn = f"CN={sam},{ou or f'CN=Users,{self.base_dn}'}"
        self.ok(self.conn.add(dn, USER_CLASSES, {"sAMAccountName": sam, **attributes}))
        if password is not None:
            self.set(dn, unicodePwd=unicode_pwd(password))
            self.set(dn, userAccountControl="512")
        return dn

    def lock_out(self, dn: str) -> None:
        """What the DC writes after too many wrong passwords: lockoutTime = now."""
        self.set(dn, lockoutTime=str(filetime(datetime.now(UTC))))

    def set(self, dn: str, **attributes: Any) -> None:
        changes = {k: [(MODIFY_REPLACE, [v])] for k, v in attributes.items()}
        self.ok(self.conn.modify(dn, changes))


@dataclass(frozen=True)
class SambaDc:
    values: dict[str, str]
    admin_password: str = field(repr=False)
    ca_pem: str = field(repr=False)
    env_file: Path = ENV_FILE
    script_env: dict[str, str] = field(default_factory=dict)

    @property
    def ip(self) -> str:
        return self.values["SAMBA_DC_IP"]

    @property
    def url(self) -> str:
        return self.values["SAMBA_DC_URL"]

    @property
    def base_dn(self) -> str:
        return self.values["SAMBA_DC_BASE_DN"]

    @property
    def dns_name(self) -> str:
        return self.values["SAMBA_DC_REALM"].lower()

    @property
    def netbios(self) -> str:
        return self.values["SAMBA_DC_REALM"].split(".")[0]

    @property
    def admin_upn(self) -> str:
        return self.values["SAMBA_DC_ADMIN_UPN"]

    def ad_connection(self, domain_prefix: str = "pedroaviary", **changes: Any) -> AdConnection:
        settings: dict[str, Any] = {
            "url": self.url,
            "bind_user": self.admin_upn,
            "bind_password": self.admin_password,
            "ca_pem": self.ca_pem,
            "domain_prefix": domain_prefix,
        }
        settings.update(changes)
        return AdConnection(**settings)

    def api_settings(self) -> dict[str, str]:
        """The body of PUT /customers/{slug}/connections/ad."""
        return {
            "url": self.url,
            "bind_user": self.admin_upn,
            "bind_password": self.admin_password,
            "ca_pem": self.ca_pem,
        }

    def _server(self) -> Server:
        return Server(
            self.ip,
            port=636,
            use_ssl=True,
            tls=VerifiedTls(tls_context(self.ca_pem), self.ip),
            get_info=NONE,
            connect_timeout=5,
        )

    @contextmanager
    def admin(self) -> Iterator[DcAdmin]:
        conn = Connection(
            self._server(),
            self.admin_upn,
            self.admin_password,
            authentication=SIMPLE,
            raise_exceptions=False,
            receive_timeout=10,
        )
        assert conn.bind(), conn.result
        try:
            yield DcAdmin(conn, self.base_dn)
        finally:
            conn.unbind()

    def bind(self, user: str, password: str) -> tuple[bool, str]:
        """Can ``user`` log on with ``password``? (and the DC's message when not)"""
        conn = Connection(
            self._server(),
            user,
            password,
            authentication=SIMPLE,
            raise_exceptions=False,
            receive_timeout=10,
        )
        bound = bool(conn.bind())
        message = str(conn.result.get("message") or "")
        conn.unbind()
        return bound, message

    def answers(self) -> bool:
        try:
            return self.bind(self.admin_upn, self.admin_password)[0]
        except LDAPException:
            return False

    def _script(self, command: str) -> None:
        env = {
            **os.environ,
            "SAMBA_DC_IP": self.ip,
            "SAMBA_DC_DIR": self.values["SAMBA_DC_DIR"],
            "SAMBA_DC_REALM": self.values["SAMBA_DC_REALM"],
            "SAMBA_DC_ENV_FILE": str(self.env_file),
            **self.script_env,
        }
        subprocess.run(["bash", str(SCRIPT), *command.split()], env=env, check=True, timeout=180)

    def stop(self) -> None:
        self._script("stop")

    def start(self) -> None:
        self._script("start")

    def replicate(self, direction: str = "both") -> None:
        """A joined DC: pull changes now, as Samba's own schedule would (see the script)."""
        self._script(f"replicate {direction}")


def _read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def load_second_dc(first: SambaDc) -> SambaDc:
    """The DC that joined ``first``'s domain; fails (never skips) without one."""
    if not SECOND_ENV_FILE.exists():
        pytest.fail(
            f"no second Samba AD DC: {SECOND_ENV_FILE} is missing. `make services-up` starts "
            "it (SAMBA_DC_IP=127.0.0.78 SAMBA_DC_HOST=DC2 SAMBA_DC_JOIN_DIR=<first DC's "
            "state directory> bash scripts/samba-dc.sh start)"
        )
    values = _read_env(SECOND_ENV_FILE)
    if values.get("SAMBA_DC_JOINED_IP") != first.ip:
        pytest.fail(f"the DC of {SECOND_ENV_FILE} did not join the DC at {first.ip}")
    dc = SambaDc(
        values,
        admin_password=Path(values["SAMBA_DC_ADMIN_PASSWORD_FILE"]).read_text(),
        ca_pem=Path(values["SAMBA_DC_CA_FILE"]).read_text(),
        env_file=SECOND_ENV_FILE,
        script_env={"SAMBA_DC_HOST": "DC2", "SAMBA_DC_JOIN_DIR": first.values["SAMBA_DC_DIR"]},
    )
    if not dc.answers():
        dc.start()  # a test stopped it and failed before starting it again
    return dc


def load_samba_dc() -> SambaDc:
    if not ENV_FILE.exists():
        pytest.fail(
            f"no Samba AD DC: {ENV_FILE} is missing. Start one with "
            "`bash scripts/samba-dc.sh start` (as root; `make test` does this itself)."
        )
    values = _read_env(ENV_FILE)
    dc = SambaDc(
        values,
        admin_password=Path(values["SAMBA_DC_ADMIN_PASSWORD_FILE"]).read_text(),
        ca_pem=Path(values["SAMBA_DC_CA_FILE"]).read_text(),
    )
    if not dc.answers():
        pytest.fail(f"the Samba AD DC of {ENV_FILE} ({dc.url}) does not answer an LDAPS bind")
    return dc
