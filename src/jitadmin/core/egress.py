"""The egress policy: which addresses jitadmin may open connections to (docs/security.md).

Public addresses are always allowed. Everything else (loopback, private, link-local, shared,
reserved, multicast, unspecified) only when ``JITADMIN_EGRESS_ALLOW`` lists the network or the
host name; a cloud metadata address only when listed on its own, never through a wider range
or a host name. Addresses that embed an IPv4 address (``::ffff:a.b.c.d``, ``::a.b.c.d``,
NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by the embedded one.

Pure: the adapters resolve names and call ``check`` with every address a name resolves to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jitadmin.core.errors import MisconfiguredError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "JITADMIN_EGRESS_ALLOW"
# Instance metadata and platform endpoints: AWS/GCP/Azure/OCI/DigitalOcean, AWS IPv6 and ECS,
# Alibaba, Oracle (legacy), Azure WireServer (a public address only the platform answers on).
METADATA_ADDRESSES: frozenset[IpAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "100.100.100.200",
        "192.0.0.192",
        "168.63.129.16",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")


class EgressRefusedError(MisconfiguredError):
    """A connection the egress policy does not allow; nothing was sent."""


def parse_address(host: str) -> IpAddress | None:
    """``host`` as an IP address (brackets and an IPv6 zone allowed), or None for a name."""
    text = host.strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embedded(address: IpAddress) -> IpAddress:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), else itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def category(address: IpAddress) -> str:
    """``public``, or what kind of non-public address this is (for messages)."""
    inner = embedded(address)
    if inner in METADATA_ADDRESSES or address in METADATA_ADDRESSES:
        return "cloud metadata"
    checks = (
        ("loopback", inner.is_loopback),
        ("unspecified", inner.is_unspecified),
        ("link-local", inner.is_link_local),
        ("multicast", inner.is_multicast),
        ("private", inner.is_private),
    )
    for name, hit in checks:
        if hit:
            return name
    return "public" if inner.is_global else "reserved"


def _normal_name(host: str) -> str:
    return host.strip().lower().rstrip(".")


@dataclass(frozen=True)
class EgressPolicy:
    """Networks and host names that may be reached besides public addresses."""

    networks: tuple[IpNetwork, ...] = ()
    hosts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> EgressPolicy:
        """CIDRs, addresses and host names (``*.corp.example`` for every name below it)."""
        networks: list[IpNetwork] = []
        hosts: list[str] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = _normal_name(entry)
            if not _HOST_NAME.fullmatch(name) or len(name) > 253:
                raise ValueError(
                    f"{entry!r} is neither a network (CIDR), an address nor a host name"
                )
            hosts.append(name)
        return cls(tuple(networks), tuple(hosts))

    def names(self, host: str) -> bool:
        """True when ``host`` is a listed host name (exactly, or under a ``*.`` entry)."""
        name = _normal_name(host)
        return any(
            name == entry or (entry.startswith("*.") and name.endswith(entry[1:]))
            for entry in self.hosts
        )

    def lists(self, address: IpAddress) -> bool:
        """True when a listed network holds ``address`` (metadata: only listed on its own)."""
        candidates = {address, embedded(address)}
        if category(address) == "cloud metadata":
            return any(net.num_addresses == 1 and net[0] in candidates for net in self.networks)
        return any(a in net for a in candidates for net in self.networks)

    def lists_host(self, host: str) -> bool:
        """The allow list names ``host``: a listed name, or an address in a listed network.

        Plain http (no TLS) is accepted only for such a host.
        """
        address = parse_address(host)
        return self.lists(address) if address is not None else self.names(host)

    def refusal(self, host: str, addresses: Sequence[IpAddress]) -> str | None:
        """Why connecting to ``host`` (which resolved to ``addresses``) is not allowed, or None."""
        if not addresses:
            return f"{host} resolved to no address"
        named = parse_address(host) is None and self.names(host)
        for address in addresses:
            kind = category(address)
            if kind == "public" or self.lists(address):
                continue
            if named and kind != "cloud metadata":
                continue
            verb = "is" if parse_address(host) is not None else "resolves to"
            return (
                f"{host} is not reachable under the egress policy: it {verb} a {kind} address"
                f" that {SETTING} does not list"
            )
        return None

    def check(self, host: str, addresses: Sequence[IpAddress]) -> None:
        """Raise ``EgressRefusedError`` unless every address of ``host`` may be reached."""
        reason = self.refusal(host, addresses)
        if reason is not None:
            raise EgressRefusedError(reason)

    def literal_refusal(self, host: str) -> str | None:
        """For an address ``host``, why it may not be reached (a name: judged once resolved)."""
        address = parse_address(host)
        return None if address is None else self.refusal(host, [address])

    def plain_http_refusal(self, host: str) -> str | None:
        if self.lists_host(host):
            return None
        return f"must be an https URL (plain http only for a host {SETTING} lists)"
