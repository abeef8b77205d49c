"""LDAP plumbing for the Active Directory adapter: TLS-only sessions and error translation.

Every session is encrypted before the bind (LDAPS, or StartTLS on ``ldap://``) and verifies the
DC's certificate with the standard library, against the customer's CA when one is configured.
Every ldap3 failure leaves this module as one of the adapter taxonomy's errors; messages name
the operation and the server's diagnostic, never a password.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ldap3 import BASE, NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPException,
    LDAPResponseTimeoutError,
    LDAPStartTLSError,
)

from jitadmin.adapters.egress import checked_address
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    AlreadyExistsError,
    MisconfiguredError,
    RejectedError,
    TransientError,
)

# LDAP result codes (RFC 4511 §4.1.9) this adapter branches on.
SUCCESS = 0
NO_SUCH_ATTRIBUTE = 16
CONSTRAINT_VIOLATION = 19
ATTRIBUTE_OR_VALUE_EXISTS = 20
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS = 50
UNWILLING_TO_PERFORM = 53
ENTRY_ALREADY_EXISTS = 68
# Everything not listed (constraint violations, unwillingToPerform...) is a refusal.
_ERROR_KINDS: dict[int, type[AdapterError]] = {
    ENTRY_ALREADY_EXISTS: AlreadyExistsError,
    NO_SUCH_OBJECT: AdapterNotFoundError,
    # timeLimitExceeded, adminLimitExceeded, busy, unavailable, other: try again later
    **dict.fromkeys((3, 11, 51, 52, 80), TransientError),
    # authMethodNotSupported, strongerAuthRequired, referral, confidentialityRequired,
    # inappropriateAuthentication: the connection settings are wrong
    **dict.fromkeys((7, 8, 10, 13, 48), MisconfiguredError),
}

# AD's extended error in the diagnostic text ("0000052D: Constraint violation - ...").
_WEAK_PASSWORD = "0000052D"  # noqa: S105 - an error code, not a password
# Bind failure sub-codes ("... AcceptSecurityContext error, data 533, ...").
_BIND_REASONS = {
    "52e": "wrong user name or password",
    "525": "user not found",
    "530": "not permitted to log on at this time",
    "531": "not permitted to log on at this workstation",
    "532": "password expired",
    "533": "account disabled",
    "701": "account expired",
    "773": "password must be changed",
    "775": "account locked out",
}


@dataclass(frozen=True)
class Entry:
    """One search result with raw values (Samba returns binary SIDs and GUIDs)."""

    dn: str
    raw: dict[str, list[bytes]]

    def values(self, name: str) -> list[bytes]:
        for key, values in self.raw.items():
            if key.lower() == name.lower():
                return values
        return []

    def text(self, name: str) -> str | None:
        values = self.values(name)
        return values[0].decode("utf-8", "replace") if values else None

    def number(self, name: str) -> int | None:
        value = self.text(name)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None


class VerifiedTls(Tls):  # type: ignore[misc]  # ldap3 ships no type information
    """ldap3's TLS hook, verified by the standard library (IP SANs, SNI, hostname check).

    ldap3 turns hostname checking off and does its own, which ignores IP addresses in the
    certificate on current Pythons; an ``ssl.SSLContext`` with ``check_hostname`` does it right.
    """

    def __init__(self, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        self._context = context
        self._server_name = server_name
        self.verify_error: str | None = None

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        # Request/response protocol: without this, Nagle holds the first request after the
        # handshake until the DC's delayed ACK arrives (40 ms per connection on Linux).
        with contextlib.suppress(OSError):
            connection.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            connection.socket = self._context.wrap_socket(
                connection.socket,
                server_side=False,
                do_handshake_on_connect=do_handshake,
                server_hostname=self._server_name,
            )
        except ssl.SSLCertVerificationError as error:
            self.verify_error = error.verify_message or str(error)
            raise


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    start_tls: bool

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("ldaps", "ldap") or not parts.hostname:
            raise MisconfiguredError(
                "the AD url must be ldaps://host[:port] (LDAPS) or ldap://host[:port] (StartTLS)"
            )
        try:
            port = parts.port or (636 if scheme == "ldaps" else 389)
        except ValueError as error:
            raise MisconfiguredError(f"the AD url has an invalid port: {error}") from None
        return cls(parts.hostname, port, start_tls=scheme == "ldap")

    def __str__(self) -> str:
        return f"{'ldap' if self.start_tls else 'ldaps'}://{self.host}:{self.port}"


def tls_context(ca_pem: str | None) -> ssl.SSLContext:
    """Trust the customer's CA when given, else the system's; TLS 1.2 at least."""
    try:
        context = ssl.create_default_context(cadata=ca_pem or None)
    except (ssl.SSLError, ValueError) as error:
        raise MisconfiguredError(f"ca_pem is not a usable PEM certificate: {error}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class LdapSession:
    """One bound connection; methods raise the adapter taxonomy, never ldap3 errors."""

    def __init__(self, connection: Connection, endpoint: Endpoint) -> None:
        self._conn = connection
        self.endpoint = endpoint

    def tls_version(self) -> str:
        version = getattr(self._conn.socket, "version", None)
        return str(version()) if callable(version) else "TLS"

    def search(
        self,
        base: str,
        query: str,
        attributes: Sequence[str],
        *,
        what: str,
        scope: str = SUBTREE,
        controls: Sequence[Any] | None = None,
    ) -> list[Entry]:
        with self._guard(what):
            ok = self._conn.search(
                base, query, scope, attributes=list(attributes), controls=controls
            )
        if not ok and self._conn.result["result"] != SUCCESS:
            if self._conn.result["result"] == NO_SUCH_OBJECT:
                return []
            raise result_error(self._conn.result, what)
        return [
            Entry(str(item["dn"]), {k: list(v) for k, v in item["raw_attributes"].items()})
            for item in self._conn.response or []
            if item.get("type") == "searchResEntry"
        ]

    def read(
        self,
        dn: str,
        attributes: Sequence[str],
        *,
        what: str,
        controls: Sequence[Any] | None = None,
    ) -> Entry | None:
        found = self.search(
            dn, "(objectClass=*)", attributes, what=what, scope=BASE, controls=controls
        )
        return found[0] if found else None

    def add(
        self, dn: str, object_class: list[str], attributes: dict[str, Any], *, what: str
    ) -> None:
        with self._guard(what):
            ok = self._conn.add(dn, object_class, attributes)
        if not ok:
            raise result_error(self._conn.result, what)

    def modify(
        self,
        dn: str,
        changes: dict[str, Any],
        *,
        what: str,
        already: Sequence[int] = (),
        controls: Sequence[Any] | None = None,
    ) -> bool:
        """True when the change was made, False when the DC said it was already so."""
        with self._guard(what):
            ok = self._conn.modify(dn, changes, controls=controls)
        if ok:
            return True
        if self._conn.result["result"] in already:
            return False
        raise result_error(self._conn.result, what)

    def close(self) -> None:
        _close(self._conn)

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except (LDAPCommunicationError, LDAPResponseTimeoutError, OSError) as error:
            raise TransientError(
                f"{what}: lost the connection to {self.endpoint} ({type(error).__name__})"
            ) from None
        except LDAPException as error:
            # Refused before sending (a malformed DN or filter from the settings): retrying
            # cannot help. Only the type is shown; ldap3's text may echo attribute values.
            raise MisconfiguredError(f"{what}: {type(error).__name__}") from None


def open_session(
    endpoint: Endpoint,
    context: ssl.SSLContext,
    bind_user: str,
    bind_password: str,
    *,
    connect_timeout_s: float,
    receive_timeout_s: int,
    egress: EgressPolicy,
) -> LdapSession:
    """Connect, encrypt, verify the certificate, then simple-bind; never binds in clear.

    ldap3 gets the address the egress policy checked, never the name to resolve again; TLS
    still verifies the certificate for the configured host name.
    """
    address = checked_address(egress, endpoint.host, endpoint.port)
    tls = VerifiedTls(context, endpoint.host)
    server = Server(
        address,
        port=endpoint.port,
        use_ssl=not endpoint.start_tls,
        tls=tls,
        get_info=NONE,
        connect_timeout=connect_timeout_s,
    )
    connection = Connection(
        server,
        user=bind_user,
        password=bind_password,
        authentication=SIMPLE,
        raise_exceptions=False,
        receive_timeout=receive_timeout_s,  # ldap3 packs it as a C long: must be an int
        auto_referrals=False,
    )
    try:
        _encrypt_and_bind(connection, endpoint, tls)
    except Exception:
        _close(connection)
        raise
    if not connection.bound:
        result = connection.result
        _close(connection)
        if result.get("result") == INVALID_CREDENTIALS:
            reason = bind_reason(str(result.get("message") or ""))
            raise MisconfiguredError(f"bind as {bind_user} refused: {reason}", vendor_code="49")
        raise result_error(result, f"bind as {bind_user}")
    return LdapSession(connection, endpoint)


def _encrypt_and_bind(connection: Connection, endpoint: Endpoint, tls: VerifiedTls) -> None:
    try:
        connection.open()
        if endpoint.start_tls and not connection.start_tls():
            raise MisconfiguredError(f"{endpoint} refused StartTLS")
        connection.bind()
    except LDAPStartTLSError:
        if tls.verify_error:
            raise _untrusted(endpoint, tls.verify_error) from None
        raise MisconfiguredError(f"{endpoint} refused StartTLS") from None
    except LDAPException as error:
        if tls.verify_error:
            raise _untrusted(endpoint, tls.verify_error) from None
        raise TransientError(
            f"domain controller {endpoint} unreachable ({_cause(error)})"
        ) from None


def _close(connection: Connection) -> None:
    with contextlib.suppress(LDAPException, OSError):
        connection.unbind()


def _cause(error: Exception) -> str:
    """The socket-level reason inside ldap3's nested message ("Connection refused")."""
    found = re.search(r"\[Errno -?\d+\] [^'\")\]]+|timed out|invalid server address", str(error))
    return found.group(0) if found else type(error).__name__


def _untrusted(endpoint: Endpoint, reason: str) -> MisconfiguredError:
    return MisconfiguredError(
        f"the certificate of {endpoint} is not trusted ({reason}); set ca_pem to the CA that "
        "issued it and use the host name the certificate names"
    )


def bind_reason(message: str) -> str:
    lowered = message.lower()
    for code, reason in _BIND_REASONS.items():
        if f"data {code}," in lowered or lowered.endswith(f"data {code}"):
            return reason
    return "invalid credentials"


def result_error(result: dict[str, Any], what: str) -> AdapterError:
    """Map an LDAP result to the adapter taxonomy with a message an admin can act on."""
    code = int(result.get("result") or 0)
    name = str(result.get("description") or "error")
    diagnostic = str(result.get("message") or "").strip()
    detail = f"{what}: {name}" + (f" - {diagnostic}" if diagnostic else "")
    vendor = str(code)
    if code == CONSTRAINT_VIOLATION and _WEAK_PASSWORD in diagnostic.upper():
        return RejectedError(
            f"{what}: the password does not meet the domain's password policy "
            "(length, complexity or history)",
            vendor_code=vendor,
        )
    if code == INSUFFICIENT_ACCESS:
        return MisconfiguredError(
            f"{what}: the bind account lacks the rights for this ({diagnostic or name})",
            vendor_code=vendor,
        )
    return _ERROR_KINDS.get(code, RejectedError)(detail, vendor_code=vendor)
