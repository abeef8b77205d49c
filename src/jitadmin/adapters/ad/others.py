"""A grant and a revocation on the domain's other writable DCs (see ``replicas``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from jitadmin.adapters.ad.account import ACCOUNT_ATTRIBUTES, Account, guid_filter_value
from jitadmin.adapters.ad.domain import Domain, read_state, unverifiable
from jitadmin.adapters.ad.ldap import Endpoint, LdapSession
from jitadmin.adapters.ad.replicas import connected_dsa, same_dn, writable_dcs
from jitadmin.adapters.ad.steps import enable_until, harden, set_password, take_away
from jitadmin.core.errors import TransientError

log = logging.getLogger(__name__)


class OtherDcs:
    def __init__(
        self,
        home_url: str,
        listed: list[Endpoint],
        discover: bool,
        opener: Callable[[Endpoint], LdapSession],
        bind_user: str,
        protected_users: bool = False,
    ) -> None:
        self._protected_users = protected_users
        self._home_url = home_url  # the connection's url
        self._listed = listed
        self._discover = discover
        self._open = opener
        self._bind_user = bind_user

    def pdc_session(self, session: LdapSession, domain: Domain) -> LdapSession | None:
        """A session with the PDC emulator when it is one of ``other_dcs`` and ``url`` is not
        it: writes go there. None: write through ``session`` (also when the PDC emulator cannot
        be reached; a revocation still waits for every listed DC)."""
        if not self._listed:
            return None
        entry = session.read(domain.base_dn, ["fSMORoleOwner"], what="read the PDC emulator")
        pdc = (entry.text("fSMORoleOwner") if entry else None) or ""
        if not pdc or same_dn(connected_dsa(session), pdc):
            return None
        for endpoint in self._listed:
            try:
                other = self._open(endpoint)
            except TransientError as error:
                log.warning("DC %s cannot be reached (%s)", endpoint, error)
                continue
            if same_dn(connected_dsa(other), pdc):
                return other
            other.close()
        return None

    def endpoints(self, session: LdapSession, domain: Domain) -> list[Endpoint]:
        # Writing through the PDC emulator instead of url: url's DC is one of the others.
        home = Endpoint.parse(self._home_url)
        found = [home] if session.endpoint != home else []
        found += [e for e in self._listed if e not in found and e != session.endpoint]
        if self._discover:
            here = connected_dsa(session).lower()
            for dc in writable_dcs(session, domain.base_dn):
                endpoint = Endpoint.parse(dc.url)
                if dc.dsa_dn.lower() != here and endpoint not in found:
                    found.append(endpoint)
        return found

    def findings(self, session: LdapSession, domain: Domain) -> list[str]:
        """For the connection test: the writable DCs, the PDC emulator, where revokes go."""
        dcs = writable_dcs(session, domain.base_dn)
        here = connected_dsa(session).lower()
        names = [f"{dc.name} (PDC emulator)" if dc.pdc else dc.name for dc in dcs]
        findings = [f"writable DCs of the domain: {', '.join(names) or 'none listed'}"]
        pdc = next((dc for dc in dcs if dc.pdc), None)
        if pdc is not None and pdc.dsa_dn.lower() != here:
            findings.append(
                f"note: writes go to {session.endpoint}, not to the PDC emulator {pdc.name}; "
                "set url to the PDC emulator"
            )
        others = self.endpoints(session, domain)
        if others:
            findings.append(
                "revocations are also written to and read back on: "
                + ", ".join(str(e) for e in others)
            )
        elif len(dcs) > 1:
            findings.append(
                f"note: {len(dcs) - 1} other writable DC(s) only learn of a revocation by "
                "replication (up to the site link's schedule); set other_dcs or discover_dcs"
            )
        return findings

    def grant(
        self,
        session: LdapSession,
        domain: Domain,
        account: Account,
        password: str,
        ends: datetime,
        member_ttl_s: int | None = None,
    ) -> list[str]:
        """The same grant on every other reachable DC that has the account, read back there.

        A DC the account has not replicated to yet leaves the grant unverified (retried); a
        DC that cannot be reached is skipped: it cannot let anyone in either.
        """
        shown = []
        for endpoint, other in self._sessions(session, domain, reachable_only=True):
            found = _by_guid(other, domain, account)
            if found is None:
                raise TransientError(
                    f"{account.sam} has not replicated to {endpoint} yet; the grant is verified "
                    "once that DC shows it"
                )
            set_password(other, found, password)
            if self._protected_users:
                # Else this DC's userAccountControl, written later, would win over the first's.
                found = harden(other, domain, found)
            enable_until(other, domain, found, ends, member_ttl_s=member_ttl_s)
            state = read_state(other, domain, found.dn, found.sam)
            if not state.is_enabled_admin(domain):
                raise TransientError(
                    f"{account.sam} does not show as an enabled Domain Admin on {endpoint} yet"
                )
            shown.append(str(endpoint))
        return shown

    def revoke(
        self,
        session: LdapSession,
        domain: Domain,
        account: Account,
        new_password: Callable[[], str],
    ) -> list[str]:
        """The revocation written and read back on every other DC; one that cannot be reached
        leaves it unverified (TransientError), so the grant stays revoking until it can."""
        shown = []
        for endpoint, other in self._sessions(session, domain, reachable_only=False):
            found = _by_guid(other, domain, account)
            if found is None:
                # Not replicated there yet: no access there, and what arrives later is the
                # state written here, already revoked.
                shown.append(f"{endpoint} (account not there)")
                continue
            take_away(other, domain, found, new_password())
            state = read_state(other, domain, found.dn, found.sam)
            remaining = state.remaining_access(domain)
            if remaining:
                raise TransientError(
                    f"revoke of {found.sam} not verified on {endpoint}: {', '.join(remaining)}"
                )
            if state.admin_membership(domain) is None:
                raise unverifiable(found.sam, self._bind_user)
            shown.append(str(endpoint))
        return shown

    def _sessions(
        self, session: LdapSession, domain: Domain, *, reachable_only: bool
    ) -> Iterator[tuple[Endpoint, LdapSession]]:
        endpoints = self.endpoints(session, domain)
        if not endpoints:
            return
        here = connected_dsa(session).lower()
        for endpoint in endpoints:
            try:
                other = self._open(endpoint)
            except TransientError as error:
                if reachable_only:
                    log.warning("DC %s cannot be reached (%s); skipped", endpoint, error)
                    continue
                raise TransientError(
                    f"{endpoint} cannot be reached ({error.message}); the revocation is not "
                    "verified until that DC shows it"
                ) from None
            with _closing(other):
                if connected_dsa(other).lower() == here:
                    continue  # the DC the writes went to, listed once more
                yield endpoint, other


def _by_guid(session: LdapSession, domain: Domain, account: Account) -> Account | None:
    found = session.search(
        domain.base_dn,
        f"(objectGUID={guid_filter_value(account.guid)})",
        ACCOUNT_ATTRIBUTES,
        what=f"look up {account.sam}",
    )
    return Account.from_entry(found[0]) if found else None


@contextmanager
def _closing(session: LdapSession) -> Iterator[LdapSession]:
    try:
        yield session
    finally:
        session.close()
