"""Grants are pinned to a tenant: a connection may not be pointed at another one while any
grant made through it is unfinished (the revoke would run, and "verify", in the wrong place).

Only what can be told without the network is compared here: the M365 ``tenant_id`` setting
(a GUID or a domain name), and for AD the base DN and the domain of a ``user@domain`` bind
user. The worker checks the real thing (tenant GUID, domain SID) before every revoke.
"""

from __future__ import annotations

from typing import Any

from jitadmin.core.connectors import ConnectorSpec
from jitadmin.core.errors import ConflictError
from jitadmin.core.grant import UNFINISHED, Grant
from jitadmin.core.naming import normalised
from jitadmin.ports import UnitOfWork


def unfinished_grants(uow: UnitOfWork, customer: str, kind: str) -> list[Grant]:
    return [
        grant
        for state in sorted(UNFINISHED)
        for grant in uow.grants.find(state=state.value, customer=customer)
        if grant.identity_provider == kind
    ]


def refuse_tenant_switch(
    uow: UnitOfWork, customer: str, spec: ConnectorSpec, new: dict[str, Any]
) -> None:
    """409 when ``new`` settings point the connection at another tenant while grants made
    through it are unfinished. Nothing has been written when this raises."""
    kind = spec.kind
    current = uow.connections.get(customer, kind)
    if current is None:
        return
    grants = unfinished_grants(uow, customer, kind)
    if not grants:
        return
    pinned = {normalised(g.tenant_id) for g in grants if g.tenant_id}
    change = spec.tenant_switch(current.settings, new, pinned)
    if change is None:
        return
    raise ConflictError(
        f"the {kind} connection of {customer} may not switch tenant ({change}) while "
        f"{len(grants)} grant(s) made through it are unfinished (e.g. {grants[0].id}, "
        f"{grants[0].state.value}): revoke them first, or keep the tenant",
        existing_id=grants[0].id,
    )
