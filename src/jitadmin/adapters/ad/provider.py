"""IdentityProvider for on-premises Active Directory: temporary Domain Admins over LDAPS.

One tech account per requester and customer (``core.naming``), tagged as jitadmin's, kept between
grants. Grant: find or create it disabled → set the one-time password → set accountExpires →
enable → add to Domain Admins (found by RID 512) → read back. Revoke:
remove from Domain Admins → disable → reset the password to a value nobody knows → read back →
undo what AdminSDHolder left (adminCount, inheritance off). Every step treats "already so" as
success and is reported through ``record`` at once, so a retry after a crash at any point
converges. An account with the chosen
name that jitadmin does not manage for this requester is never touched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ldap3 import MODIFY_REPLACE
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from jitadmin.adapters.ad.account import (
    ACCOUNT_ATTRIBUTES,
    ACCOUNTDISABLE,
    MANAGED_TAG,
    Account,
    display_name,
    filetime,
    guid_filter_value,
    new_account_attributes,
)
from jitadmin.adapters.ad.checks import (
    require_password_allowed,
    require_unexpired_password,
    require_usable,
)
from jitadmin.adapters.ad.domain import (
    Domain,
    discover,
    read_state,
    unverifiable,
)
from jitadmin.adapters.ad.ldap import (
    CONSTRAINT_VIOLATION,
    Endpoint,
    LdapSession,
    open_session,
    tls_context,
)
from jitadmin.adapters.ad.others import OtherDcs
from jitadmin.adapters.ad.pam import membership_ttl, move_membership_expiry, time_bound_finding
from jitadmin.adapters.ad.replicas import parse_other_dcs
from jitadmin.adapters.ad.rights import bind_account_rights
from jitadmin.adapters.ad.sdprop import undo_stamp
from jitadmin.adapters.ad.steps import enable_until, harden, set_password, take_away
from jitadmin.core import naming
from jitadmin.core.clock import iso
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.errors import (
    AdapterNotFoundError,
    AlreadyExistsError,
    MisconfiguredError,
    RejectedError,
    TransientError,
)
from jitadmin.core.passwords import generate_password
from jitadmin.ports import (
    AccessResult,
    AccessSpec,
    ManagedAccount,
    ProgressRecorder,
    RevokeSpec,
)

log = logging.getLogger(__name__)

USER_CLASSES = ["top", "person", "organizationalPerson", "user"]


@dataclass(frozen=True)
class AdConnection:
    url: str
    bind_user: str
    bind_password: str = field(repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    base_dn: str | None = None
    ou: str | None = None  # relative to the base DN, or a full DN; default CN=Users
    # The customer's prefix for tech account names; empty: the first label of the AD domain.
    domain_prefix: str = ""
    # The domain's other writable DCs (LDAPS URLs, space or comma separated), and whether to
    # find them under CN=Sites: each is written to on revoke and read back (see replicas).
    other_dcs: str | None = None
    discover_dcs: bool = False
    # Ticket hardening for the grant: Protected Users and "sensitive and cannot be delegated".
    protected_users: bool = False
    # Domain Admins membership with a TTL where the forest has the PAM feature (see pam).
    time_bound_membership: bool = False


class ActiveDirectoryIdentityProvider:
    kind = "ad"

    def __init__(
        self,
        connection: AdConnection,
        *,
        connect_timeout_s: float = 5.0,
        receive_timeout_s: int = 10,
        # The worker revokes at the grant's end; the DC's own expiry is the backstop a little
        # later, so it never cuts a technician off early (the clock starts at activation).
        expiry_grace: timedelta = timedelta(minutes=5),
        revoke_password: Callable[[], str] = lambda: generate_password(32),
        egress: EgressPolicy | None = None,
    ) -> None:
        self.connection = connection
        self._egress = egress or EgressPolicy()
        self._connect_timeout_s = connect_timeout_s
        self._receive_timeout_s = int(receive_timeout_s)
        self._expiry_grace = expiry_grace
        self._revoke_password = revoke_password
        self._domain: Domain | None = None
        self._others = OtherDcs(
            connection.url,
            parse_other_dcs(connection.other_dcs),
            connection.discover_dcs,
            self._open,
            connection.bind_user,
            connection.protected_users,
        )

    def __repr__(self) -> str:
        return f"ActiveDirectoryIdentityProvider(url={self.connection.url!r})"

    # -- IdentityProvider --------------------------------------------------------------

    def planned_username(self, grant_id: str, requester: str) -> str:
        return naming.ad_sam_account_name(requester, self._prefix())

    def check(self) -> list[str]:
        user = self.connection.bind_user
        with self._session() as (session, domain):
            findings = [
                f"{session.tls_version()} to {session.endpoint}, certificate verified",
                f"bound as {user}",
                f"domain {domain.dns_name} ({domain.base_dn}), SID {domain.sid}",
                f"Domain Admins (RID 512): {domain.admins_dn}",
            ]
            rights = bind_account_rights(session, domain, user)
            if rights.missing:
                # Every missing right at once, each with its fix.
                raise MisconfiguredError("; ".join(rights.missing))
            findings += rights.present
            findings += self._others.findings(session, domain)
            if self.connection.time_bound_membership:
                findings.append(time_bound_finding(session))
            managed = self._tagged(session, domain.base_dn)
            enabled = sum(1 for a in managed if a.managed and not a.disabled)
            findings.append(
                f"{len(managed)} tech account(s) managed by jitadmin, {enabled} enabled"
            )
        return findings

    def grant(self, spec: AccessSpec, record: ProgressRecorder) -> AccessResult:
        with self._session() as (session, domain):
            prefix = self._prefix(domain)
            sam = naming.ad_sam_account_name(spec.requester, prefix)
            full = naming.ad_account_name(spec.requester, prefix)
            upn = f"{full}@{domain.dns_name}"
            account = self._find(session, domain, sam)
            if account is not None:
                _require_owner(account, spec.requester)
            # Checked before anything is created or changed: the DC would refuse the password
            # only after the account exists (Samba does not check this rule at all).
            require_password_allowed(
                spec.password, sam, account.display_name if account else display_name(full)
            )
            if account is None:
                account = self._create(session, domain, spec.requester, sam, full, upn)
                record("account_created", _account_data(account))
            elif spec.account.get("object_guid") != account.guid:
                record("account_reused", _account_data(account))
            dn = account.dn
            # Password first, then expiry, then enable: the account is never enabled without
            # both (Samba would allow a password-less enable; Windows refuses it).
            set_password(session, account, spec.password)
            record("password_set", {})
            require_unexpired_password(session, dn, sam, self.connection.bind_user)
            ends = spec.expires_at.astimezone(UTC) + self._expiry_grace
            if self.connection.protected_users:
                account = harden(session, domain, account, record)
            ttl = membership_ttl(
                session, self.connection.time_bound_membership, datetime.now(UTC), ends, record
            )
            enable_until(session, domain, account, ends, record, member_ttl_s=ttl)
            state = read_state(session, domain, dn, sam)
            if state.admin_membership(domain) is None:
                raise unverifiable(sam, self.connection.bind_user)
            if not state.is_enabled_admin(domain):
                raise TransientError(f"{sam} does not show as an enabled Domain Admin yet")
            require_usable(state, sam, self.connection.bind_user)
            if self.connection.protected_users and not state.hardened(domain):
                raise TransientError(
                    f"{sam} does not show as a sensitive member of Protected Users yet"
                )
            shown = self._others.grant(session, domain, account, spec.password, ends, ttl)
            record("verified_granted", {"other_dcs": shown} if shown else {})
        log.info("%s is an enabled Domain Admin until %s", sam, iso(ends))
        return AccessResult(
            username=sam,
            account={
                **_account_data(account),
                "upn": upn,
                "group_dn": domain.admins_dn,
                "account_expires": iso(ends),
                **({"member_ttl": True} if ttl is not None else {}),
            },
        )

    def extend(self, spec: AccessSpec) -> None:
        """Move ``accountExpires`` with the grant, so the DC's own backstop follows it."""
        with self._session() as (session, domain):
            sam = str(spec.account.get("sam") or "") or naming.ad_sam_account_name(
                spec.requester, self._prefix(domain)
            )
            account = self._find(session, domain, sam)
            if account is None:
                raise TransientError(f"{sam} is not visible on the DC; cannot move its expiry")
            _require_owner(account, spec.requester)
            ends = spec.expires_at.astimezone(UTC) + self._expiry_grace
            session.modify(
                account.dn,
                {"accountExpires": [(MODIFY_REPLACE, [str(filetime(ends))])]},
                what=f"move accountExpires of {sam}",
            )
            if spec.account.get("member_ttl"):
                move_membership_expiry(session, domain.admins_dn, account.dn, sam, ends)
        log.info("%s now expires on the DC at %s", sam, iso(ends))

    def revoke(self, spec: RevokeSpec, record: ProgressRecorder) -> None:
        with self._session() as (session, domain):
            account = self._locate_for_revoke(session, domain, spec, record)
            if account is None:
                return
            sam, dn = account.sam, account.dn
            take_away(session, domain, account, self._revoke_password(), record)
            state = read_state(session, domain, dn, sam)
            remaining = state.remaining_access(domain)
            if remaining:
                raise TransientError(f"revoke of {sam} not verified: {', '.join(remaining)}")
            if state.admin_membership(domain) is None:
                raise unverifiable(sam, self.connection.bind_user)
            # SDProp leaves adminCount=1 and inheritance off behind when the account leaves the
            # group: hidden from the usual (adminCount=1) audits while its ACL still differs.
            undone = undo_stamp(session, domain, dn, sam, state)
            if undone is not None:
                record("admin_count_cleared", undone)
            # Every other DC too, before anything says revoked: until replication arrives there,
            # each of them would still let the technician in as a Domain Admin.
            shown = self._others.revoke(session, domain, account, self._revoke_password)
            record("verified_revoked", {"other_dcs": shown} if shown else {})
        log.info("%s removed from Domain Admins, disabled and its password reset", sam)

    def tenant_id(self) -> str:
        """The domain SID: what a grant is pinned to (a DC of another domain differs)."""
        with self._session() as (_, domain):
            return domain.sid

    def domain_names(self) -> tuple[str, str]:
        """(domain SID, DNS name): what an on-prem agent reports of the domain it serves."""
        with self._session() as (_, domain):
            return domain.sid, domain.dns_name

    def list_managed(self) -> list[ManagedAccount]:
        """Tech accounts with jitadmin's full tag (employeeType and owner), read back one by one
        for tokenGroups, which the DC computes only on a base-scope read.

        With an OU configured, jitadmin's accounts live there and only there is searched (a
        domain may be shared by several jitadmin installations, each with its OU); without
        one, the whole domain.
        """
        found = []
        with self._session() as (session, domain):
            scope = domain.ou_dn if self.connection.ou else domain.base_dn
            for account in self._tagged(session, scope):
                if not account.managed:
                    continue
                state = read_state(session, domain, account.dn, account.sam)
                found.append(
                    ManagedAccount(
                        username=account.sam,
                        object_id=account.guid,
                        grant_id=None,
                        requester=account.owner,
                        enabled=not state.uac & ACCOUNTDISABLE,
                        holds_admin=state.holds_admin(domain),
                        account=_account_data(account),
                    )
                )
        return found

    # -- sessions and discovery --------------------------------------------------------

    def _open(self, endpoint: Endpoint) -> LdapSession:
        c = self.connection
        return open_session(
            endpoint,
            tls_context(c.ca_pem),
            c.bind_user,
            c.bind_password,
            connect_timeout_s=self._connect_timeout_s,
            receive_timeout_s=self._receive_timeout_s,
            egress=self._egress,
        )

    @contextlib.contextmanager
    def _session(self) -> Iterator[tuple[LdapSession, Domain]]:
        c = self.connection
        session = self._open(Endpoint.parse(c.url))
        try:
            domain = self._domain or discover(session, c.base_dn, c.ou)
            self._domain = domain
            pdc = self._others.pdc_session(session, domain)
            if pdc is not None:
                session.close()
                session = pdc
            try:
                yield session, domain
            except AdapterNotFoundError as error:
                # Something discovered earlier moved (a renamed group or OU): look again next time.
                self._domain = None
                raise TransientError(str(error), vendor_code=error.vendor_code) from None
        finally:
            session.close()

    def _prefix(self, domain: Domain | None = None) -> str:
        if self.connection.domain_prefix:
            return self.connection.domain_prefix
        if domain is None:
            with self._session() as (_, found):
                domain = found
        return domain.dns_name.split(".")[0]

    # -- accounts ----------------------------------------------------------------------

    @staticmethod
    def _tagged(session: LdapSession, base: str) -> list[Account]:
        entries = session.search(
            base,
            f"(employeeType={MANAGED_TAG})",
            ACCOUNT_ATTRIBUTES,
            what="list jitadmin's accounts",
        )
        return [Account.from_entry(e) for e in entries]

    @staticmethod
    def _find(session: LdapSession, domain: Domain, sam: str) -> Account | None:
        # Any object class: a group or computer holding the name blocks it just the same.
        found = session.search(
            domain.base_dn,
            f"(sAMAccountName={escape_filter_chars(sam)})",
            ACCOUNT_ATTRIBUTES,
            what=f"look up {sam}",
        )
        return Account.from_entry(found[0]) if found else None

    def _create(
        self, session: LdapSession, domain: Domain, requester: str, sam: str, full: str, upn: str
    ) -> Account:
        dn = f"CN={escape_rdn(full)},{domain.ou_dn}"
        try:
            session.add(
                dn,
                USER_CLASSES,
                new_account_attributes(sam, full, upn, requester),
                what=f"create {sam} in {domain.ou_dn}",
            )
        except AlreadyExistsError:
            # A race with our own earlier attempt, or another object holding the name.
            existing = self._find(session, domain, sam)
            if existing is None:
                raise AlreadyExistsError(
                    f"{dn} exists already and is not a jitadmin account; it is left untouched"
                ) from None
            _require_owner(existing, requester)
            return existing
        except RejectedError as error:
            if error.vendor_code == str(CONSTRAINT_VIOLATION) and "userprincipalname" in (
                error.message.lower()
            ):
                raise AlreadyExistsError(
                    f"the userPrincipalName {upn} is already used by an account jitadmin does "
                    "not manage; it is left untouched"
                ) from None
            raise
        created = self._find(session, domain, sam)
        if created is None:
            raise TransientError(f"{sam} was created but cannot be read back yet")
        return created

    def _locate_for_revoke(
        self, session: LdapSession, domain: Domain, spec: RevokeSpec, record: ProgressRecorder
    ) -> Account | None:
        guid = spec.account.get("object_guid")
        if isinstance(guid, str) and guid:
            found = session.search(
                domain.base_dn,
                f"(objectGUID={guid_filter_value(guid)})",
                ACCOUNT_ATTRIBUTES,
                what="look up the tech account",
            )
            if not found:
                # Deleted by someone: no account, no access.
                log.warning("grant %s: account %s no longer exists", spec.grant_id, guid)
                record("verified_revoked", {"account_gone": True})
                return None
            # The object this grant created or re-used, identified by GUID, not by its tag.
            return Account.from_entry(found[0])
        sam = spec.username or self.planned_username(spec.grant_id, spec.requester)
        account = self._find(session, domain, sam)
        if account is None:
            record("verified_revoked", {})  # never created: nothing to take away
            return None
        if not account.belongs_to(spec.requester):
            # The grant failed on this collision: nothing of ours exists, theirs is not touched.
            log.warning("grant %s: %s is not ours; left alone", spec.grant_id, sam)
            record("verified_revoked", {"foreign_account_left_alone": True})
            return None
        record("account_found", _account_data(account))
        return account


def _require_owner(account: Account, requester: str) -> None:
    if not account.managed:
        raise AlreadyExistsError(
            f"an account named {account.sam} exists already ({account.dn}) and is not managed "
            "by jitadmin; it is left untouched"
        )
    if not account.belongs_to(requester):
        raise AlreadyExistsError(
            f"the account {account.sam} is jitadmin's tech account of another requester "
            f"({account.owner}); it is left untouched"
        )


def _account_data(account: Account) -> dict[str, Any]:
    return {"object_guid": account.guid, "dn": account.dn, "sam": account.sam}
