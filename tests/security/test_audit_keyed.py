"""Issue 12 item 9: someone who can write the database cannot rewrite or cut the audit chain.

They edit an entry and recompute every hash after it with plain SHA-256 (as the chain was
before), delete the newest entries and move the head back, or restore an older head record;
each is found, by ``verify`` or, for an older copy of the whole head, by a signed checkpoint
kept outside the database.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, delete, select, update

from jitadmin.core.errors import AuditTamperedError, ValidationFailedError
from jitadmin.core.events import GENESIS_HASH, AuditEvent, chain_hash
from jitadmin.db.tables import AuditHeadRow, AuditRow, CustomerRow
from jitadmin.entrypoints.worker import Worker
from jitadmin.ports import User
from jitadmin.services import admin, audit_anchor
from jitadmin.wiring import App, build

from support.config import SECRET_KEY, fast_settings

ROOT = User("root", "admin")
EVENTS = cast(Table, AuditRow.__table__)
HEAD = cast(Table, AuditHeadRow.__table__)


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    """Six entries: three customers, three users."""
    built = build(fast_settings(tmp_path, database_url=database_url))
    for slug in ("alpha", "bravo", "charlie"):
        admin.create_customer(built.ctx, ROOT, slug=slug, name=slug.title(), psa_company_id="1")
    for name in ("ann", "tom", "aud"):
        admin.add_user(built.ctx, ROOT, username=name, role="auditor")
    yield built
    built.close()


def _rows(app: App) -> list[Any]:
    with app.database.engine.connect() as conn:
        return list(conn.execute(select(EVENTS).order_by(EVENTS.c.seq)))


def _head(app: App) -> dict[str, Any]:
    with app.database.engine.connect() as conn:
        return dict(conn.execute(select(HEAD)).one()._mapping)


def _write(app: App, *statements: Any) -> None:
    with app.database.engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def _refuses_appends(app: App) -> None:
    """With a forged head nothing more is recorded, so no state change happens either."""
    before = len(_rows(app))
    with pytest.raises(AuditTamperedError):
        admin.create_customer(app.ctx, ROOT, slug="delta", name="Delta", psa_company_id="1")
    with app.database.engine.connect() as conn:
        assert conn.execute(select(CustomerRow).where(CustomerRow.slug == "delta")).first() is None
    assert len(_rows(app)) == before


def test_recomputing_the_chain_with_plain_sha256_after_an_edit_is_detected(app: App) -> None:
    rows = _rows(app)
    previous = rows[1].hash
    statements: list[Any] = []
    for row in rows[2:]:
        actor = "mallory" if row.seq == 3 else row.actor
        event = AuditEvent(row.kind, actor, row.at, row.grant_id, row.customer, dict(row.data))
        digest = chain_hash(previous, event, row.seq)
        statements.append(
            update(EVENTS)
            .where(EVENTS.c.seq == row.seq)
            .values(actor=actor, prev_hash=previous, hash=digest)
        )
        previous = digest
    statements.append(update(HEAD).values(hash=previous))
    _write(app, *statements)
    assert admin.verify_audit(app.ctx) == (2, 3)
    _refuses_appends(app)


def test_deleting_the_newest_entries_and_moving_the_head_back_is_detected(app: App) -> None:
    rows = _rows(app)
    _write(
        app,
        delete(EVENTS).where(EVENTS.c.seq >= 5),
        update(HEAD).values(seq=4, hash=rows[3].hash),
    )
    assert admin.verify_audit(app.ctx) == (4, 5)
    _refuses_appends(app)


def test_deleting_the_newest_entries_alone_is_detected(app: App) -> None:
    _write(app, delete(EVENTS).where(EVENTS.c.seq >= 4))
    assert admin.verify_audit(app.ctx) == (3, 4)


def test_a_checkpoint_verifies_an_intact_chain_and_fails_after_truncation(app: App) -> None:
    older_head = _head(app)  # what a backup taken now would hold
    admin.add_user(app.ctx, ROOT, username="late1", role="auditor")
    admin.add_user(app.ctx, ROOT, username="late2", role="auditor")
    point = audit_anchor.checkpoint(app.ctx)
    assert point.seq == 8 and point.value.startswith("jitckpt1.8.")
    verdict = audit_anchor.verify_checkpoint(app.ctx, point.value)
    assert verdict.ok and "checkpoint at entry 8" in verdict.message
    admin.add_user(app.ctx, ROOT, username="later", role="auditor")
    assert audit_anchor.verify_checkpoint(app.ctx, point.value).ok  # the chain only grew

    # Cut back to entry 6 and put back the head record of that time: the database alone
    # looks intact, the checkpoint does not.
    _write(
        app,
        delete(EVENTS).where(EVENTS.c.seq >= 7),
        update(HEAD).values(**{k: v for k, v in older_head.items() if k != "id"}),
    )
    assert admin.verify_audit(app.ctx) == (6, None)
    verdict = audit_anchor.verify_checkpoint(app.ctx, point.value)
    assert not verdict.ok and "truncated" in verdict.message and "entry 8" in verdict.message


def test_a_checkpoint_fails_when_the_entry_it_names_was_rewritten(app: App) -> None:
    point = audit_anchor.checkpoint(app.ctx)
    # The whole chain replaced by one of the same length (here: plain hashes of other data).
    previous, statements = GENESIS_HASH, []
    for row in _rows(app):
        event = AuditEvent(row.kind, "mallory", row.at, row.grant_id, row.customer, {})
        digest = chain_hash(previous, event, row.seq)
        statements.append(update(EVENTS).where(EVENTS.c.seq == row.seq).values(hash=digest))
        previous = digest
    _write(app, *statements)
    verdict = audit_anchor.verify_checkpoint(app.ctx, point.value)
    assert not verdict.ok and "broken at entry 1" in verdict.message


@pytest.mark.parametrize(
    "edit",
    [
        lambda v: v.replace("jitckpt1.6.", "jitckpt1.5."),  # another entry
        lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),  # another signature
        lambda v: "jitckpt1.6.nothex",
    ],
)
def test_an_edited_checkpoint_is_refused(app: App, edit: Any) -> None:
    value = audit_anchor.checkpoint(app.ctx).value
    with pytest.raises(ValidationFailedError) as refused:
        audit_anchor.verify_checkpoint(app.ctx, edit(value))
    assert refused.value.problems[0].field == "checkpoint"


def _cli(app: App, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "JITADMIN_DATA_DIR": str(app.settings.data_dir),
        "JITADMIN_DATABASE_URL": app.settings.effective_database_url,
        "JITADMIN_SECRET_KEY": SECRET_KEY,
    }
    return subprocess.run(
        [sys.executable, "-m", "jitadmin", "audit", *args],
        env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_the_cli_prints_a_checkpoint_and_verifies_against_it(app: App) -> None:
    printed = _cli(app, "checkpoint")
    assert printed.returncode == 0, printed.stderr
    value = printed.stdout.strip()
    assert value.startswith("jitckpt1.6.")
    intact = _cli(app, "verify", "--checkpoint", value)
    assert intact.returncode == 0, intact.stderr
    assert "audit chain intact: 6 entries" in intact.stdout
    _write(app, delete(EVENTS).where(EVENTS.c.seq >= 5))
    cut = _cli(app, "verify", "--checkpoint", value)
    assert cut.returncode == 1
    assert "audit chain broken at entry 5" in cut.stderr
    bad = _cli(app, "verify", "--checkpoint", "jitckpt1.nonsense")
    assert bad.returncode == 1 and "checkpoint:" in bad.stderr and "Traceback" not in bad.stderr


def test_the_worker_logs_a_signed_checkpoint_when_it_starts(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(app.ctx)
    with caplog.at_level(logging.INFO, logger="jitadmin.worker"):
        worker.start()
        worker.stop()
    lines = [r.getMessage() for r in caplog.records if "audit checkpoint" in r.getMessage()]
    assert len(lines) == 1, lines
    value = lines[0].split()[2]
    assert audit_anchor.verify_checkpoint(app.ctx, value).ok
