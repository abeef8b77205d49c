"""Key rotation: re-seal every secret at rest under the primary key, in small transactions.

Readers accept the primary and every previous key throughout (``JITADMIN_PREVIOUS_SECRET_KEYS``),
so the service keeps running while this goes on. Each batch is its own transaction, and a value
is only rewritten if the row still holds what was read, so a concurrent save always wins.
Running it again finds nothing left to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jitadmin.core.events import AuditEvent
from jitadmin.ports import SealedValue
from jitadmin.services.context import ServiceContext, settings_context
from jitadmin.services.grants import password_context
from jitadmin.services.second_factor import secret_context

SEALED_COLUMNS = ("connection", "psa", "shared_app", "grant_password", "totp_secret")
DEFAULT_BATCH = 100


@dataclass
class RotationReport:
    examined: dict[str, int] = field(default_factory=dict)
    resealed: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # changed by someone else between read and write; already current

    @property
    def total_resealed(self) -> int:
        return sum(self.resealed.values())


def context_of(value: SealedValue) -> str:
    if value.column == "grant_password":
        return password_context(value.key)
    if value.column == "totp_secret":
        return secret_context(value.key)
    return settings_context(value.customer, value.kind, value.settings or {})


def rotate(ctx: ServiceContext, *, actor: str, batch_size: int = DEFAULT_BATCH) -> RotationReport:
    report = RotationReport()
    for column in SEALED_COLUMNS:
        report.examined[column] = report.resealed[column] = 0
        after: str | None = None
        while True:
            with ctx.uow() as uow:
                values = uow.sealed.batch(column, after, batch_size)
                if not values:
                    break
                for value in values:
                    report.examined[column] += 1
                    if not ctx.box.needs_rotation(value.sealed):
                        continue
                    context = context_of(value)
                    fresh = ctx.box.seal(ctx.box.open(value.sealed, context), context)
                    if uow.sealed.replace(value, fresh):
                        report.resealed[column] += 1
                    else:
                        report.skipped += 1
                uow.commit()
            after = values[-1].key
    if report.total_resealed:
        with ctx.uow() as uow:
            uow.audit.append(
                AuditEvent("keys.rotated", actor, ctx.clock.now(), data=dict(report.resealed))
            )
            uow.commit()
    return report
