"""One harness per identity provider: the same questions asked of M365, AD and the fake.

A harness builds its kind's ``IdentityProvider`` (the real adapter against the Graph emulator
over HTTP, the real adapter against the Samba DC over LDAPS, or ``jitadmin.testing``'s fake) and
reads ground truth the way an administrator of that tenant would, never through the adapter.
Where the targets genuinely differ, the harness says so as a property (``deletes_on_revoke``,
``lists_untagged_admins``) and the tests branch on the property, never on the kind.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ldap3 import MODIFY_ADD

from jitadmin.adapters.ad.provider import ActiveDirectoryIdentityProvider
from jitadmin.adapters.m365.provider import M365Connection, M365IdentityProvider
from jitadmin.core.errors import MisconfiguredError, TransientError
from jitadmin.core.passwords import generate_password
from jitadmin.emulators import seed
from jitadmin.emulators.graph.app import GraphState
from jitadmin.emulators.runner import free_port
from jitadmin.ports import AccessSpec, IdentityProvider
from jitadmin.testing import FakeIdentityProvider

from support.ad import SambaDc, unique_requester
from support.config import TEST_EGRESS
from support.m365 import FAST, GA

GLOBAL_ADMIN = GA
GRAPH_TIMING: dict[str, Any] = dict(FAST)  # short retry budgets: the emulator answers at once


class IdentityHarness(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def deletes_on_revoke(self) -> bool:
        """M365 deletes the temporary account; AD disables its tech account and keeps it."""
        ...

    @property
    def lists_untagged_admins(self) -> bool:
        """M365 lists every Global Administrator (untagged too); AD only jitadmin's accounts."""
        ...

    def provider(self) -> IdentityProvider: ...
    def unreachable(self) -> IdentityProvider:
        """The provider pointed at a target that does not answer."""
        ...

    def with_wrong_secret(self, wrong: str) -> IdentityProvider: ...
    def tenant_id(self) -> str:
        """The tenant's id as its administrator reads it (Entra tenant GUID, domain SID)."""
        ...

    # -- ground truth ----------------------------------------------------------------------
    def exists(self, username: str) -> bool: ...
    def holds_admin(self, username: str) -> bool:
        """Enabled and in the admin role (Global Administrator, Domain Admins)."""
        ...

    def signs_in(self, username: str, password: str) -> bool: ...
    # -- what someone else does in the tenant ----------------------------------------------
    def add_foreign_account(self, username: str) -> None:
        """An account jitadmin does not manage, holding ``username``."""
        ...

    def add_rogue_admin(self) -> str:
        """An untagged account put into the admin role by hand; returns its username."""
        ...

    def cleanup(self) -> None: ...


def access_spec(password: str | None = None) -> AccessSpec:
    """A first attempt's request, of a requester no other test uses."""
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
    return AccessSpec(
        str(uuid.uuid4()), unique_requester(), password or generate_password(), expires
    )


# --- Microsoft 365: the real adapter against the Graph emulator ----------------------------


@dataclass
class M365Harness:
    url: str
    state: GraphState
    creds: seed.SeedCredentials
    name: str = "m365"
    deletes_on_revoke: bool = True
    lists_untagged_admins: bool = True
    _made: list[M365IdentityProvider] = field(default_factory=list)

    @property
    def tenant(self) -> str:
        return seed.CUSTOMERS[0].tenant_id

    def _build(self, *, base: str | None = None, secret: str | None = None) -> IdentityProvider:
        root = base or self.url
        connection = M365Connection(
            tenant_id=self.tenant,
            client_id=self.creds.graph_client_id,
            client_secret=secret or self.creds.graph_client_secret,
            authority_url=f"{root}/login",
            graph_url=f"{root}/v1.0",
        )
        provider = M365IdentityProvider(connection, egress=TEST_EGRESS, **GRAPH_TIMING)
        self._made.append(provider)
        return provider

    def provider(self) -> IdentityProvider:
        return self._build()

    def unreachable(self) -> IdentityProvider:
        return self._build(base=f"http://127.0.0.1:{free_port()}")

    def with_wrong_secret(self, wrong: str) -> IdentityProvider:
        return self._build(secret=wrong)

    def tenant_id(self) -> str:
        return self.tenant

    def exists(self, username: str) -> bool:
        return self.state.find_user(self.tenant, username) is not None

    def holds_admin(self, username: str) -> bool:
        user = self.state.find_user(self.tenant, username)
        if user is None or user.props.get("accountEnabled") is False:
            return False
        return any(
            a.principal_id == user.id and a.role_definition_id == GLOBAL_ADMIN
            for a in self.state.assignments(self.tenant)
        )

    def signs_in(self, username: str, password: str) -> bool:
        try:
            self.state.issue_user_token(self.tenant, username, password)
        except Exception:  # noqa: BLE001 - EntraError: wrong password, disabled or no account
            return False
        return True

    def add_foreign_account(self, username: str) -> None:
        self.state.add_user(self.tenant, username, display_name="Customer Person")

    def add_rogue_admin(self) -> str:
        upn = f"rogue.{uuid.uuid4().hex[:8]}@{seed.CUSTOMERS[0].domain}"
        self.state.add_user(self.tenant, upn, roles=[GLOBAL_ADMIN])
        return upn

    def cleanup(self) -> None:
        for provider in self._made:
            provider.close()


# --- Active Directory: the real adapter against the Samba DC ---------------------------------


@dataclass
class AdHarness:
    dc: SambaDc
    name: str = "ad"
    deletes_on_revoke: bool = False
    lists_untagged_admins: bool = False
    _added: list[str] = field(default_factory=list)  # DNs this test created by hand

    def _build(self, **changes: Any) -> IdentityProvider:
        return ActiveDirectoryIdentityProvider(self.dc.ad_connection(**changes), egress=TEST_EGRESS)

    def provider(self) -> IdentityProvider:
        return self._build()

    def unreachable(self) -> IdentityProvider:
        return self._build(url=f"ldaps://127.0.0.1:{free_port()}")

    def with_wrong_secret(self, wrong: str) -> IdentityProvider:
        return self._build(bind_password=wrong)

    def tenant_id(self) -> str:
        with self.dc.admin() as admin:
            return admin.domain_sid()

    def exists(self, username: str) -> bool:
        with self.dc.admin() as admin:
            return admin.find(username) is not None

    def holds_admin(self, username: str) -> bool:
        with self.dc.admin() as admin:
            user = admin.find(username)
            admins = admin.domain_admins_dn().lower()
        return user is not None and user.enabled and admins in user.member_of

    def signs_in(self, username: str, password: str) -> bool:
        return self.dc.bind(f"{self.dc.netbios}\\{username}", password)[0]

    def add_foreign_account(self, username: str) -> None:
        with self.dc.admin() as admin:
            self._added.append(admin.add_user(username))

    def add_rogue_admin(self) -> str:
        sam = f"rogue{uuid.uuid4().hex[:8]}"
        with self.dc.admin() as admin:
            dn = admin.add_user(sam, password=generate_password())
            self._added.append(dn)
            admin.ok(admin.conn.modify(admin.domain_admins_dn(), {"member": [(MODIFY_ADD, [dn])]}))
        return sam

    def cleanup(self) -> None:
        # A rogue Domain Admin must not outlive its test on the shared DC.
        with self.dc.admin() as admin:
            for dn in self._added:
                admin.ok(admin.conn.delete(dn))


# --- the fake, in both of its directory styles ---------------------------------------------


@dataclass
class FakeHarness:
    kind: str  # "m365": one account per grant; "ad": one tech account per requester
    name: str = ""
    fake: FakeIdentityProvider = field(init=False)

    def __post_init__(self) -> None:
        self.fake = FakeIdentityProvider(self.kind)
        self.name = f"fake-{self.kind}"

    @property
    def deletes_on_revoke(self) -> bool:
        return not self.fake.keeps_accounts

    @property
    def lists_untagged_admins(self) -> bool:
        return self.fake.lists_untagged_admins

    def provider(self) -> IdentityProvider:
        return self.fake

    def _failing(self, error: TransientError | MisconfiguredError) -> IdentityProvider:
        broken = FakeIdentityProvider(self.kind)
        broken.faults.fail_next(error, times=None)
        return broken

    def unreachable(self) -> IdentityProvider:
        return self._failing(TransientError("the directory did not answer (connection refused)"))

    def with_wrong_secret(self, wrong: str) -> IdentityProvider:
        return self._failing(MisconfiguredError("the directory refused the credentials"))

    def tenant_id(self) -> str:
        return self.fake.tenant

    def exists(self, username: str) -> bool:
        return self.fake.account_named(username) is not None

    def holds_admin(self, username: str) -> bool:
        account = self.fake.account_named(username)
        return account is not None and self.fake.holds_admin(account.object_id)

    def signs_in(self, username: str, password: str) -> bool:
        return self.fake.can_sign_in(username, password)

    def add_foreign_account(self, username: str) -> None:
        self.fake.add_foreign_account(username)

    def add_rogue_admin(self) -> str:
        username = f"rogue.{uuid.uuid4().hex[:8]}@{self.fake.domain}"
        self.fake.add_foreign_account(username, admin=True)
        return username

    def cleanup(self) -> None:
        pass
