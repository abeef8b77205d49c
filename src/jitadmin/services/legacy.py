"""One-time adoption of data written before keyed hashes (run by ``wiring.build`` at upgrade).

Two things an older version stored cannot be upgraded by a migration, because migrations never
see the secret key:

- connection secrets were sealed with only the row's identity as associated data; here each is
  opened that way once and sealed again with its plaintext settings bound in
  (``settings_context``). From then on only the bound form opens, so this is the one moment the
  settings are trusted as they stand; the audit event lists every connection re-bound, with its
  settings, for the operator to check.
- the audit head gets its HMAC and ``keyed_from`` (the first entry whose hash will be keyed);
  entries already written keep their plain SHA-256 hashes (see ``core.events``).

It runs only when ``migrate.upgrade`` took the database across ``KEYED_HASHES_REVISION`` (one
transaction together with the audit event), never on an ordinary start, so editing a setting in
the database later cannot be laundered through it.
"""

from __future__ import annotations

from typing import Any

from jitadmin.core.events import AuditEvent
from jitadmin.ports import UnitOfWork
from jitadmin.services.context import ServiceContext, connection_context, settings_context

AUDIT_CHAIN = "audit-chain"
AUDIT_HEAD = "audit-head"
ACTOR = "system:upgrade"
_BATCH = 100


def _opens(ctx: ServiceContext, sealed: str, context: str) -> str | None:
    try:
        return ctx.box.open(sealed, context)
    except ValueError:
        return None


def _bind_settings(ctx: ServiceContext, uow: UnitOfWork) -> list[dict[str, Any]]:
    rebound: list[dict[str, Any]] = []
    for column in ("connection", "psa"):
        after: str | None = None
        while values := uow.sealed.batch(column, after, _BATCH):
            for value in values:
                bound = settings_context(value.customer, value.kind, value.settings or {})
                if _opens(ctx, value.sealed, bound) is not None:
                    continue
                plain = _opens(ctx, value.sealed, connection_context(value.customer, value.kind))
                if plain is None:
                    continue  # unreadable either way: using it says so
                if uow.sealed.replace(value, ctx.box.seal(plain, bound)):
                    rebound.append(
                        {"customer": value.customer, "kind": value.kind, "settings": value.settings}
                    )
            after = values[-1].key
    return rebound


def adopt(ctx: ServiceContext) -> None:
    with ctx.uow() as uow:
        rebound = _bind_settings(ctx, uow)
        head = uow.audit.adopt_legacy_head()
        data = {
            "connections_bound": rebound,
            "audit_keyed_from": head.seq + 1 if head is not None else 1,
        }
        uow.audit.append(
            AuditEvent("security.keyed_hashes_adopted", ACTOR, ctx.clock.now(), data=data)
        )
        uow.commit()
