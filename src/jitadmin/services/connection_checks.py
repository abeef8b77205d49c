"""Connection settings against the egress policy, and what a connection test may say.

``check_settings`` runs when a PSA or customer connection is saved: every URL must be https
(plain http only for a host ``JITADMIN_EGRESS_ALLOW`` lists; LDAP: ldaps or ldap with StartTLS)
and its host must not be, or resolve to, an address the policy refuses; ``tenant_id`` must be
a GUID or a domain name. A broken rule is a 422 naming the field, and nothing is written. The
adapters check again on every connection (a name may resolve differently later).

``run_test`` runs a connection test and answers with a fixed message per kind of failure:
never the remote's body, status text or exception text, so a test cannot read what some
server answers. Each test is audited (outcome and fixed message; no secret, no remote text).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from jitadmin.core.connectors import ConnectorSpec, SharedApp
from jitadmin.core.egress import EgressRefusedError
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    ConnectionSettingsAlteredError,
    FieldProblem,
    MisconfiguredError,
    TenantMismatchError,
    TransientError,
    UpstreamUnavailableError,
    ValidationFailedError,
)
from jitadmin.core.events import AuditEvent
from jitadmin.ports import User
from jitadmin.services.context import ServiceContext

_DEFAULT_PORTS = {"https": 443, "http": 80, "ldaps": 636, "ldap": 389}

# What a failed test says, by the kind of failure (first match wins; subclasses first).
FIXED_MESSAGES: tuple[tuple[type[AdapterError], str, str], ...] = (
    (EgressRefusedError, "blocked", "blocked by the egress policy"),
    (
        TenantMismatchError,
        "tenant_mismatch",
        "the connection reaches another tenant or domain than its grants were made in",
    ),
    (ConnectionSettingsAlteredError, "settings_altered", "refused before any request"),
    (MisconfiguredError, "refused", "the server refused the credentials or the settings"),
    (TransientError, "unreachable", "could not reach the server"),
    (AdapterNotFoundError, "not_found", "the server does not know the configured account"),
    (AdapterError, "failed", "the server refused the request"),
)


def check_settings(
    ctx: ServiceContext,
    spec: ConnectorSpec | SharedApp,
    settings: dict[str, Any],
    secrets: dict[str, Any] | None = None,
) -> None:
    """Raise ``ValidationFailedError`` (every broken field) unless the settings may be saved.
    The spec's own check sees the secrets too (a credential is one of several fields)."""
    schemes, rule_text = (
        (spec.url_schemes, spec.url_rule) if isinstance(spec, ConnectorSpec) else (("https",), "")
    )
    problems = [
        FieldProblem(name, rule)
        for name in spec.url_fields
        if settings.get(name) is not None
        for rule in [
            url_rule(ctx, str(settings[name]), schemes, rule_text or "must be an https URL")
        ]
        if rule is not None
    ]
    problems.extend(
        FieldProblem(name, rule) for name, rule in spec.check({**settings, **(secrets or {})})
    )
    if problems:
        raise ValidationFailedError(problems)


def url_rule(
    ctx: ServiceContext,
    url: str,
    schemes: tuple[str, ...] = ("https",),
    rule: str = "must be an https URL",
) -> str | None:
    """Why ``url`` may not be saved (the egress policy, as for connections), or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return "must be a URL with a valid host and port"
    if not parts.hostname:
        return "must be a URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password (they belong in the secret fields)"
    scheme = parts.scheme.lower()
    refusal = _scheme_rule(ctx, schemes, rule, scheme, parts.hostname)
    if refusal is not None:
        return refusal
    return _address_rule(ctx, parts.hostname, port or _DEFAULT_PORTS[scheme])


def _scheme_rule(
    ctx: ServiceContext, schemes: tuple[str, ...], rule: str, scheme: str, host: str
) -> str | None:
    if scheme in schemes:
        return None
    if scheme == "http" and "https" in schemes:
        return ctx.egress.plain_http_refusal(host)
    return rule


def _address_rule(ctx: ServiceContext, host: str, port: int) -> str | None:
    policy = ctx.egress
    literal = policy.literal_refusal(host)
    if literal is not None:
        return literal
    try:
        addresses = list(ctx.resolve(host, port))
    except AdapterError:
        return None  # unresolvable now: judged when connecting, like any later DNS change
    return policy.refusal(host, addresses) if addresses else None


def outcome_of(error: AdapterError) -> tuple[str, str]:
    """``(outcome, message)`` for a failed test; the message never quotes the remote."""
    for kind, outcome, message in FIXED_MESSAGES:
        if isinstance(error, kind):
            if isinstance(error, EgressRefusedError | ConnectionSettingsAlteredError):
                # Our own words (host, kind of address, which connection), never the remote's.
                return outcome, f"{message}: {error.message}"
            return outcome, message
    return "failed", "the server refused the request"  # pragma: no cover (AdapterError matches)


def run_test(
    ctx: ServiceContext,
    actor: User,
    test: Callable[[], list[str]],
    *,
    event: str,
    kind: str,
    customer: str | None = None,
) -> list[str]:
    """``test()``'s findings; a failure is a 503 with a fixed message. Audited either way."""
    try:
        findings = test()
    except AdapterError as error:
        outcome, message = outcome_of(error)
        _audit(ctx, actor, event, customer, kind=kind, outcome=outcome, message=message)
        raise UpstreamUnavailableError(f"connection test failed: {message}") from error
    _audit(ctx, actor, event, customer, kind=kind, outcome="ok")
    return findings


def _audit(ctx: ServiceContext, actor: User, event: str, customer: str | None, **data: Any) -> None:
    with ctx.uow() as uow:
        uow.audit.append(
            AuditEvent(
                kind=event, actor=actor.username, at=ctx.clock.now(), customer=customer, data=data
            )
        )
        uow.commit()
