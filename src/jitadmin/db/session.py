"""Engine and unit of work: one ``with`` block is one transaction."""

from __future__ import annotations

import threading
from typing import Any, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session

from jitadmin.core.events import AuditKeys
from jitadmin.db.agents import SqlAgentRepo
from jitadmin.db.audit_log import SqlAuditLog
from jitadmin.db.files import private_sqlite
from jitadmin.db.grant_repo import SqlGrantRepo
from jitadmin.db.notifications import SqlNotificationRepo
from jitadmin.db.repos import SqlConnectionRepo, SqlCustomerRepo, SqlOutbox, SqlUserRepo
from jitadmin.db.runtime import SqlRuntimeRepo
from jitadmin.db.sealed import SqlSealedStore
from jitadmin.db.second_factors import SqlSecondFactorRepo
from jitadmin.db.signin_failures import SqlSignInFailureRepo
from jitadmin.db.web_sessions import SqlApiTokenRepo, SqlWebSessionRepo


def make_engine(url: str, *, sqlite_synchronous: str = "normal", **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        private_sqlite(url)  # 0600 before SQLite creates it (or its journals) umask-wide
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )
        _serialise_sqlite_writers(engine, sqlite_synchronous)
        return engine
    # Enough connections for the worker pool, its loop and the API's thread pool.
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, pool_pre_ping=True, **kwargs)


_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}


def prepare_sqlite_connection(
    dbapi_connection: Any, _record: Any = None, synchronous: str = "normal"
) -> None:
    """WAL, foreign keys, a 30 s busy timeout, and no implicit BEGIN (we issue our own).

    ``synchronous`` NORMAL (SQLite's advice for WAL): a commit is one write to the WAL, synced
    at checkpoints instead of an fsync per commit. That fsync was half of a short transaction's
    CPU and, held under the write gate, serialised every writer behind the disk. A crashed
    process loses nothing; a power loss may undo the last commits, each wholly (a state change
    and its audit event together), and the chain stays verifiable. ``full``: fsync each."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA synchronous={_SYNCHRONOUS[synchronous]}")
    cursor.close()


# As long as SQLite's own busy_timeout: a writer that waits longer is stuck, not queued.
SQLITE_GATE_TIMEOUT_S = 30.0


def _serialise_sqlite_writers(engine: Engine, synchronous: str) -> None:
    """Take SQLite's write lock at BEGIN, so read-then-write transactions never interleave.

    Threads of this process first queue on an in-process lock, held from BEGIN until the
    connection goes back to the pool: SQLite's busy handler polls with sleeps of up to 100 ms,
    so under a storm of short transactions the write lock would sit free while dozens of
    waiters sleep. Other processes still meet at SQLite's lock, as before."""
    gate = threading.Lock()

    event.listen(
        engine, "connect", lambda conn, record: prepare_sqlite_connection(conn, record, synchronous)
    )

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if not gate.acquire(timeout=SQLITE_GATE_TIMEOUT_S):
            raise TimeoutError("database is busy: no write slot within 30 s")
        connection.info[_GATE_HELD] = True
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    def _release(_dbapi_connection: Any, record: Any, *_: Any) -> None:
        if record.info.pop(_GATE_HELD, False):
            gate.release()

    # Back in the pool, or thrown away after an error: either way the slot is free again.
    event.listen(engine, "checkin", _release)
    event.listen(engine, "invalidate", _release)


_GATE_HELD = "jitadmin_sqlite_gate"


class _Handle:
    """What the repositories hold as their session. Core statements (``connection()``) run on
    the unit of work's own connection; an ORM ``Session``, joined to that connection and its
    transaction, is made only when a repository needs the ORM. The worker's hot path (claims,
    progress steps, audit appends, grant loads and saves) then never builds one: the Session's
    bookkeeping cost more CPU than the statements it ran."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._orm: Session | None = None

    def connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._engine.connect()
            self._conn.begin()  # BEGIN (IMMEDIATE, behind the gate, on SQLite) now
        return self._conn

    def get_bind(self) -> Engine:
        return self._engine

    def orm(self) -> Session:
        if self._orm is None:
            # Joined to our transaction: it never commits or ends it itself (we do).
            self._orm = Session(
                bind=self.connection(),
                expire_on_commit=False,
                join_transaction_mode="rollback_only",
            )
        return self._orm

    def __getattr__(self, name: str) -> Any:
        return getattr(self.orm(), name)

    def commit(self) -> None:
        if self._orm is not None:
            self._orm.flush()
        if self._conn is not None:
            self._conn.commit()
        self.close()

    def close(self) -> None:
        """Ends the transaction (rolled back unless committed) and returns the connection."""
        orm, conn, self._orm, self._conn = self._orm, self._conn, None, None
        if orm is not None:
            orm.close()
        if conn is not None:
            conn.close()


class SqlUnitOfWork:
    def __init__(
        self,
        engine: Engine,
        audit_keys: AuditKeys | None,
        credential: str | None = None,
    ) -> None:
        self._engine = engine
        self._audit_keys = audit_keys
        self._credential = credential

    def __enter__(self) -> SqlUnitOfWork:
        handle = _Handle(self._engine)
        self._handle = handle
        self.session = cast(Session, handle)
        self.customers = SqlCustomerRepo(self.session)
        self.connections = SqlConnectionRepo(self.session)
        self.grants = SqlGrantRepo(self.session)
        self.audit = SqlAuditLog(self.session, self._audit_keys, self._credential)
        self.outbox = SqlOutbox(self.session)
        self.users = SqlUserRepo(self.session)
        self.web_sessions = SqlWebSessionRepo(self.session)
        self.second_factors = SqlSecondFactorRepo(self.session)
        self.api_tokens = SqlApiTokenRepo(self.session)
        self.sealed = SqlSealedStore(self.session)
        self.signin_failures = SqlSignInFailureRepo(self.session)
        self.runtime = SqlRuntimeRepo(self.session)
        self.notifications = SqlNotificationRepo(self.session)
        self.agents = SqlAgentRepo(self.session)
        return self

    def __exit__(self, *exc: object) -> None:
        # Anything not committed explicitly is rolled back: bad input changes nothing.
        self._handle.close()

    def commit(self) -> None:
        self._handle.commit()


class Database:
    def __init__(
        self, url: str, audit_keys: AuditKeys | None = None, *, sqlite_synchronous: str = "normal"
    ) -> None:
        self.url = url
        self.engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
        # Without them (schema-only tools) the audit log can be neither appended to nor verified.
        self.audit_keys = audit_keys

    def uow(self, credential: str | None = None) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, self.audit_keys, credential)

    def dispose(self) -> None:
        self.engine.dispose()
