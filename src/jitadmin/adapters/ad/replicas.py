"""The domain's other writable DCs: where a grant is read back and a revocation is written too.

Replication between DCs runs on its own schedule: membership and the enabled flag are not urgent
replication, and between sites they wait for the site link (180 minutes by default). Until a
change arrives, the other DC still accepts the technician's password and still puts Domain
Admins in the token. The rootDSE ``replicateSingleObject`` operation would pull one object now,
but Samba 4.17 does not implement it (53 unwillingToPerform, "rootdse_modify: unknown attribute
to change!", while its rootDSE accepts schemaUpdateNow), and on Windows it needs replication
rights beyond what revoking needs. So the adapter does not wait for replication:
it writes the revocation itself on every other DC where the account already exists (the same
changes converge when replication catches up) and reads each one back; a DC that cannot be
reached leaves the revocation unverified. A grant is written on the other DCs that already have
the account and read back on every reachable one.

Discovery (``discover_dcs``): the writable DCs are the ``nTDSDSA`` objects under
``CN=Sites,CN=Configuration`` whose ``msDS-hasMasterNCs`` holds the domain; the PDC emulator is
the DSA that the domain object's ``fSMORoleOwner`` names. Writes go to it when it is one of
``other_dcs`` (``OtherDcs.pdc_session``).
See https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-adts/
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ldap3 import LEVEL
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from jitadmin.adapters.ad.ldap import Endpoint, LdapSession
from jitadmin.core.errors import MisconfiguredError


@dataclass(frozen=True)
class DomainController:
    name: str  # dNSHostName
    dsa_dn: str  # its CN=NTDS Settings object
    pdc: bool

    @property
    def url(self) -> str:
        return f"ldaps://{self.name}:636"


def parse_other_dcs(value: str | None) -> list[Endpoint]:
    """``other_dcs``: LDAPS (or StartTLS) URLs separated by spaces or commas."""
    urls = [u for u in re.split(r"[\s,]+", value or "") if u]
    endpoints = []
    for url in urls:
        try:
            endpoints.append(Endpoint.parse(url))
        except MisconfiguredError:
            raise MisconfiguredError(
                f"other_dcs: {url!r} must be ldaps://host[:port] or ldap://host[:port]"
            ) from None
    return endpoints


def other_dcs_rule(value: object) -> str | None:
    """The settings check: None when ``other_dcs`` is usable, else the rule it breaks."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return "must be LDAPS URLs separated by spaces or commas"
    try:
        parse_other_dcs(value)
    except MisconfiguredError as error:
        return error.message.removeprefix("other_dcs: ")
    return None


def connected_dsa(session: LdapSession) -> str:
    """The NTDS Settings DN of the DC this session talks to (rootDSE dsServiceName)."""
    root = session.read("", ["dsServiceName"], what="read the rootDSE")
    name = root.text("dsServiceName") if root else None
    if not name:
        raise MisconfiguredError("the DC did not name itself (rootDSE dsServiceName)")
    return name


def writable_dcs(session: LdapSession, base_dn: str) -> list[DomainController]:
    """Every writable DC of the domain, the PDC emulator marked."""
    root = session.read("", ["configurationNamingContext"], what="read the rootDSE")
    config = root.text("configurationNamingContext") if root else None
    if not config:
        raise MisconfiguredError("the DC did not name its configuration partition")
    domain = session.read(base_dn, ["fSMORoleOwner"], what="read the PDC emulator role owner")
    pdc_dsa = (domain.text("fSMORoleOwner") if domain else None) or ""
    dsas = session.search(
        f"CN=Sites,{config}",
        f"(&(objectCategory=nTDSDSA)(msDS-hasMasterNCs={escape_filter_chars(base_dn)}))",
        ["objectGUID"],
        what="list the domain's DCs under CN=Sites",
    )
    found = []
    for dsa in dsas:
        server_dn = _parent(dsa.dn)
        servers = session.search(
            _parent(server_dn),
            f"(&(objectClass=server)(distinguishedName={escape_filter_chars(server_dn)}))",
            ["dNSHostName"],
            what="read a DC's host name",
            scope=LEVEL,
        )
        name = servers[0].text("dNSHostName") if servers else None
        if name:
            found.append(DomainController(name.lower(), dsa.dn, same_dn(dsa.dn, pdc_dsa)))
    return sorted(found, key=lambda dc: (not dc.pdc, dc.name))


def _parent(dn: str) -> str:
    parts = parse_dn(dn, escape=True)
    return ",".join(f"{attr}={value}" for attr, value, _ in parts[1:])


def same_dn(a: str, b: str) -> bool:
    def norm(dn: str) -> list[tuple[str, str]]:
        return [(attr.lower(), value.lower()) for attr, value, _ in parse_dn(dn)] if dn else []

    return bool(a and b) and norm(a) == norm(b)
