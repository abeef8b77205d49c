"""SQLite under many threads: no lost update, a failed transaction frees the write slot, and a
batch claim hands each grant to exactly one worker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jitadmin.core.grant import Grant, GrantState
from jitadmin.db.migrate import upgrade
from jitadmin.db.session import Database

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'writes.db'}")
    upgrade(db.engine)
    yield db
    db.dispose()


def _add_grants(db: Database, count: int, state: GrantState = GrantState.ACTIVE) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with db.uow() as uow:
        for gid in ids:
            grant = Grant(
                id=gid, customer="contoso", identity_provider="m365", ticket_id="1001",
                requester="tech@msp.example", reason="sqlite write test", duration_minutes=60,
                created_at=NOW - timedelta(hours=2), expires_at=NOW - timedelta(hours=1),
                state=state,
            )  # fmt: skip
            uow.grants.add(grant, None)
        uow.commit()
    return ids


def _run_threads(count: int, target: object) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a writer never got the database"


def test_concurrent_read_modify_write_loses_nothing(database: Database) -> None:
    (gid,) = _add_grants(database, 1)

    def bump() -> None:
        for _ in range(25):
            with database.uow() as uow:
                grant = uow.grants.get(gid, lock=True)
                assert grant is not None
                grant.attempts += 1
                uow.grants.save(grant)
                uow.commit()

    _run_threads(16, bump)
    with database.uow() as uow:
        grant = uow.grants.get(gid)
    assert grant is not None and grant.attempts == 16 * 25


def test_a_transaction_that_died_with_its_connection_frees_the_slot(database: Database) -> None:
    (gid,) = _add_grants(database, 1)
    with database.uow() as uow:
        assert uow.grants.get(gid, lock=True) is not None
        uow.session.connection().invalidate()  # as after a disk or driver error
    done = threading.Event()

    def write() -> None:
        with database.uow() as uow:
            uow.grants.record_progress(gid, "checked", {"ok": True})
            uow.commit()
        done.set()

    _run_threads(1, write)
    assert done.is_set()
    with database.uow() as uow:
        grant = uow.grants.get(gid)
    assert grant is not None and grant.steps == ["checked"] and grant.account == {"ok": True}


def test_batch_claims_never_overlap(database: Database) -> None:
    ids = _add_grants(database, 60)
    # Six workers ask for overlapping windows of 30 grants, so every grant is wanted by three.
    windows = [[ids[(start + k) % len(ids)] for k in range(30)] for start in range(0, 60, 10)]
    won: list[set[str]] = []
    lock = threading.Lock()
    turns = iter(range(len(windows)))

    def claim() -> None:
        with lock:
            turn = next(turns)
        window = windows[turn]
        with database.uow() as uow:
            got = uow.grants.claim_many(window, f"worker-{turn}", NOW, NOW + LEASE)
            uow.commit()
        assert got <= set(window)
        with lock:
            won.append(got)

    _run_threads(len(windows), claim)
    assert len(won) == len(windows)
    claimed = [gid for got in won for gid in got]
    assert sorted(claimed) == sorted(ids), "every due grant claimed exactly once"
    with database.uow() as uow:
        assert uow.grants.claim_many(ids, "late", NOW, NOW + timedelta(seconds=30)) == set()
        # A lapsed lease makes the grant claimable again.
        later = NOW + timedelta(seconds=31)
        assert uow.grants.claim_many(ids[:3], "late", later, later + timedelta(seconds=30)) == set(
            ids[:3]
        )


def test_record_progress_merges_and_reports_a_missing_grant(database: Database) -> None:
    (gid,) = _add_grants(database, 1, GrantState.REVOKING)
    with database.uow() as uow:
        assert uow.grants.record_progress(gid, "role_removed", {"a": 1}) == "contoso"
        assert uow.grants.record_progress(gid, "user_deleted", {"b": 2}) == "contoso"
        assert uow.grants.record_progress(str(uuid.uuid4()), "x", {}) is None
        uow.commit()
    with database.uow() as uow:
        grant = uow.grants.get(gid)
    assert grant is not None
    assert grant.steps == ["role_removed", "user_deleted"]
    assert grant.account == {"a": 1, "b": 2}
