"""Signed checkpoints of the audit chain: an anchor kept outside the database.

``checkpoint`` prints the chain's head (seq, hash) with the time and an HMAC under a key derived
from the secret key: ``jitckpt1.<seq>.<hash>.<time>.<signature>``. Kept somewhere the database's
writers cannot reach (a ticket, a log shipper, a printout), it lets ``verify_checkpoint`` prove
later that the chain still holds that entry unchanged and has not been cut back before it —
which the database alone cannot prove against someone who restores an older copy of it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from jitadmin.core.errors import ValidationFailedError
from jitadmin.core.events import GENESIS_HASH, matches
from jitadmin.services.context import ServiceContext

CHECKPOINT_PURPOSE = "audit-checkpoint"
_PREFIX = "jitckpt1"
_TIME = "%Y%m%dT%H%M%SZ"
_FORM = re.compile(r"^jitckpt1\.(\d{1,18})\.([0-9a-f]{64})\.(\d{8}T\d{6}Z)\.([0-9a-f]{64})$")
_FORM_RULE = "must be a value printed by `jitadmin audit checkpoint` (jitckpt1.<seq>.<hash>...)"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: datetime
    value: str


@dataclass(frozen=True)
class CheckpointVerdict:
    ok: bool
    message: str


def _signed_part(seq: int, digest: str, at: datetime) -> str:
    return f"{_PREFIX}.{seq}.{digest}.{at.astimezone(UTC).strftime(_TIME)}"


def _signature(key: bytes, signed: str) -> str:
    return hmac.new(key, signed.encode(), hashlib.sha256).hexdigest()


def checkpoint(ctx: ServiceContext) -> Checkpoint:
    """The current head, signed (raises ``AuditTamperedError`` if the head record is forged)."""
    with ctx.uow() as uow:
        head = uow.audit.head()
    seq, digest = (head.seq, head.hash) if head is not None else (0, GENESIS_HASH)
    at = ctx.clock.now().replace(microsecond=0)
    signed = _signed_part(seq, digest, at)
    key = ctx.box.mac_keys(CHECKPOINT_PURPOSE)[0]
    return Checkpoint(seq, digest, at, f"{signed}.{_signature(key, signed)}")


def parse(ctx: ServiceContext, value: str) -> Checkpoint:
    """A checkpoint this installation signed (any current or previous key), or a 422-style error."""
    found = _FORM.match(value.strip())
    if found is None:
        raise ValidationFailedError.single("checkpoint", _FORM_RULE)
    seq, digest, stamp, signature = found.groups()
    at = datetime.strptime(stamp, _TIME).replace(tzinfo=UTC)
    signed = _signed_part(int(seq), digest, at)
    expected = [_signature(k, signed) for k in ctx.box.mac_keys(CHECKPOINT_PURPOSE)]
    if not matches(signature, expected):
        raise ValidationFailedError.single(
            "checkpoint", "signature does not match (edited, or signed with another key)"
        )
    return Checkpoint(int(seq), digest, at, value.strip())


def verify_checkpoint(ctx: ServiceContext, value: str) -> CheckpointVerdict:
    """Whether the chain is intact and still holds the checkpoint's entry, unchanged."""
    point = parse(ctx, value)
    with ctx.uow() as uow:
        checked, bad = uow.audit.verify()
        stored = uow.audit.hash_at(point.seq) if point.seq else GENESIS_HASH
    if bad is not None:
        return CheckpointVerdict(
            False, f"audit chain broken at entry {bad} ({checked} entries before it are intact)"
        )
    if point.seq > checked or stored is None:
        return CheckpointVerdict(
            False,
            f"audit chain truncated: the checkpoint's entry {point.seq} is gone "
            f"(the chain now ends at {checked})",
        )
    if stored != point.hash:
        return CheckpointVerdict(
            False, f"audit chain rewritten: entry {point.seq} differs from the checkpoint"
        )
    return CheckpointVerdict(
        True,
        f"audit chain intact: {checked} entries; checkpoint at entry {point.seq} "
        f"({point.at.strftime(_TIME)}) matches",
    )
