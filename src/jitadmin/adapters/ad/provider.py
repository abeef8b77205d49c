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
from datetime import UTC, timedelta
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from jitadmin.adapters.ad.account import (
    ACCOUNT_ATTRIBUTES,
    ACCOUNTDISABLE,
    DOMAIN_ADMINS_RID,
    DOMAIN_USERS_RID,
    MANAGED_TAG,
    Account,
    disabled_uac,
    display_name,
    enabled_uac,
    filetime,
    guid_filter_value,
    new_account_attributes,
    unicode_pwd,
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
    ATTRIBUTE_OR_VALUE_EXISTS,
    CONSTRAINT_VIOLATION,
    ENTRY_ALREADY_EXISTS,
    NO_SUCH_ATTRIBUTE,
    UNWILLING_TO_PERFORM,
    Endpoint,
    LdapSession,
    open_session,
    tls_context,
)
from jitadmin.adapters.ad.rights import bind_account_rights
from jitadmin.adapters.ad.sdprop import undo_stamp
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
            session.modify(
                dn,
                {"unicodePwd": [(MODIFY_REPLACE, [unicode_pwd(spec.password)])]},
                what=f"set the password of {sam}",
            )
            # An admin reset does not unlock on Windows, and a re-used tech account is a typical
            # lockout victim (a saved old password retried somewhere).
            session.modify(
                dn,
                {"lockoutTime": [(MODIFY_REPLACE, ["0"])]},
                what=f"unlock {sam} (lockoutTime 0)",
            )
            record("password_set", {})
            require_unexpired_password(session, dn, sam, self.connection.bind_user)
            ends = spec.expires_at.astimezone(UTC) + self._expiry_grace
            session.modify(
                dn,
                {"accountExpires": [(MODIFY_REPLACE, [str(filetime(ends))])]},
                what=f"set accountExpires of {sam}",
            )
            record("expiry_set", {"account_expires": iso(ends)})
            if enabled_uac(account.uac) != account.uac:
                session.modify(
                    dn,
                    {"userAccountControl": [(MODIFY_REPLACE, [str(enabled_uac(account.uac))])]},
                    what=f"enable {sam}",
                )
            record("enabled", {})
            session.modify(
                domain.admins_dn,
                {"member": [(MODIFY_ADD, [dn])]},
                what=f"add {sam} to Domain Admins",
                already=(ENTRY_ALREADY_EXISTS, ATTRIBUTE_OR_VALUE_EXISTS),
            )
            record("group_added", {"group_dn": domain.admins_dn})
            state = read_state(session, domain, dn, sam)
            if state.admin_membership(domain) is None:
                raise unverifiable(sam, self.connection.bind_user)
            if not state.is_enabled_admin(domain):
                raise TransientError(f"{sam} does not show as an enabled Domain Admin yet")
            require_usable(state, sam, self.connection.bind_user)
            record("verified_granted", {})
        log.info("%s is an enabled Domain Admin until %s", sam, iso(ends))
        return AccessResult(
            username=sam,
            account={
                **_account_data(account),
                "upn": upn,
                "group_dn": domain.admins_dn,
                "account_expires": iso(ends),
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
        log.info("%s now expires on the DC at %s", sam, iso(ends))

    def revoke(self, spec: RevokeSpec, record: ProgressRecorder) -> None:
        with self._session() as (session, domain):
            account = self._locate_for_revoke(session, domain, spec, record)
            if account is None:
                return
            sam, dn = account.sam, account.dn
            if account.primary_group_rid == DOMAIN_ADMINS_RID:
                # Removing `member` never takes away a primary group: move it back first.
                self._restore_primary_group(session, domain, account)
            session.modify(
                domain.admins_dn,
                {"member": [(MODIFY_DELETE, [dn])]},
                what=f"remove {sam} from Domain Admins",
                # Not a member: Samba and Windows answer unwillingToPerform. Read back below.
                already=(UNWILLING_TO_PERFORM, NO_SUCH_ATTRIBUTE),
            )
            record("group_removed", {})
            if not account.disabled:
                session.modify(
                    dn,
                    {"userAccountControl": [(MODIFY_REPLACE, [str(disabled_uac(account.uac))])]},
                    what=f"disable {sam}",
                )
            record("disabled", {})
            session.modify(
                dn,
                {"unicodePwd": [(MODIFY_REPLACE, [unicode_pwd(self._revoke_password())])]},
                what=f"reset the password of {sam}",
            )
            record("password_reset", {})
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
            record("verified_revoked", {})
        log.info("%s removed from Domain Admins, disabled and its password reset", sam)

    def tenant_id(self) -> str:
        """The domain SID: what a grant is pinned to (a DC of another domain differs)."""
        with self._session() as (_, domain):
            return domain.sid

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

    @contextlib.contextmanager
    def _session(self) -> Iterator[tuple[LdapSession, Domain]]:
        c = self.connection
        session = open_session(
            Endpoint.parse(c.url),
            tls_context(c.ca_pem),
            c.bind_user,
            c.bind_password,
            connect_timeout_s=self._connect_timeout_s,
            receive_timeout_s=self._receive_timeout_s,
            egress=self._egress,
        )
        try:
            domain = self._domain or discover(session, c.base_dn, c.ou)
            self._domain = domain
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

    @staticmethod
    def _restore_primary_group(session: LdapSession, domain: Domain, account: Account) -> None:
        users = session.search(
            domain.base_dn,
            f"(&(objectClass=group)(objectSid={domain.sid}-{DOMAIN_USERS_RID}))",
            ["objectSid"],
            what="find Domain Users",
        )
        if not users:
            raise MisconfiguredError("no Domain Users group (RID 513) to make primary")
        session.modify(
            users[0].dn,
            {"member": [(MODIFY_ADD, [account.dn])]},
            what=f"add {account.sam} to Domain Users",
            already=(ENTRY_ALREADY_EXISTS, ATTRIBUTE_OR_VALUE_EXISTS),
        )
        session.modify(
            account.dn,
            {"primaryGroupID": [(MODIFY_REPLACE, [str(DOMAIN_USERS_RID)])]},
            what=f"make Domain Users the primary group of {account.sam}",
        )


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
