"""Another local user can neither read nor add to jitadmin's data dir, database and key files.

Each first start runs under the most permissive umask (000) in a directory any user may
traverse; the tests then check the modes (dir 0700, files 0600, SQLite's -wal/-shm included)
and, as the real attack, try to read and write them as the unprivileged user ``nobody``.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from jitadmin.entrypoints.demo import load_or_create_key, write_json
from jitadmin.ports import User
from jitadmin.services import admin
from jitadmin.wiring import build

from support.config import fast_settings

NOBODY = 65534
ADMIN = User("files-admin", "admin")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A directory every local user may enter (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="jit-modes-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, user=NOBODY, group=NOBODY, capture_output=True, text=True, check=False
    )


def assert_other_users_locked_out(data_dir: Path) -> None:
    listing = sorted(p.name for p in data_dir.iterdir())
    contents = {p: p.read_bytes() for p in data_dir.iterdir()}
    for path in [data_dir, *contents]:
        read = as_nobody("cat", str(path)) if path.is_file() else as_nobody("ls", str(path))
        assert read.returncode != 0 and "Permission denied" in read.stderr, path
        assert read.stdout == ""
    for target in [data_dir / "planted", *contents]:
        written = as_nobody("sh", "-c", f"echo x >> {target}")
        assert written.returncode != 0 and "Permission denied" in written.stderr, target
    # Nothing written: the same files with the same bytes.
    assert sorted(p.name for p in data_dir.iterdir()) == listing
    assert {p: p.read_bytes() for p in data_dir.iterdir()} == contents


def test_first_start_makes_data_dir_and_database_private(
    open_base: Path, backend: str, database_url: str
) -> None:
    data_dir = open_base / "var" / "jitadmin"
    # SQLite: the default database beside the data; PostgreSQL: the server's, data dir only.
    url = None if backend == "sqlite" else database_url
    with umask(0):
        app = build(fast_settings(data_dir, data_dir=data_dir, database_url=url))
        try:
            admin.add_user(app.ctx, None, username=ADMIN.username, role="admin")
            with app.database.engine.connect() as held:  # keeps -wal and -shm in place
                held.execute(text("SELECT 1"))
                files = {p.name: mode(p) for p in data_dir.iterdir()}
                assert mode(data_dir) == 0o700
                if backend == "sqlite":
                    assert {"jitadmin.db", "jitadmin.db-wal", "jitadmin.db-shm"} <= set(files)
                else:
                    assert not any(name.startswith("jitadmin.db") for name in files)
                assert files == dict.fromkeys(files, 0o600)
                assert_other_users_locked_out(data_dir)
        finally:
            app.close()


def test_existing_wide_database_files_are_tightened(
    open_base: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = open_base / "shared"
    data_dir.mkdir(mode=0o777)
    data_dir.chmod(0o777)  # an operator's wide directory, left as it is but warned about
    database = data_dir / "jitadmin.db"
    first = build(fast_settings(data_dir, data_dir=data_dir, database_url=None))
    first.close()
    stale_wal = data_dir / "jitadmin.db-wal"
    stale_wal.touch()
    for path in (database, stale_wal):
        path.chmod(0o666)  # as an older version (or a copy) left them
    with caplog.at_level(logging.WARNING, logger="jitadmin.db.files"):
        app = build(fast_settings(data_dir, data_dir=data_dir, database_url=None))
    try:
        assert mode(database) == 0o600
        assert mode(stale_wal) == 0o600
        assert mode(data_dir) == 0o777
        assert "other users can list it" in caplog.text
        read = as_nobody("cat", str(database))
        assert read.returncode != 0 and "Permission denied" in read.stderr
    finally:
        app.close()


def test_demo_key_and_credentials_document_are_private(open_base: Path) -> None:
    data_dir = open_base / "demo"
    data_dir.mkdir()
    with umask(0):
        key = load_or_create_key(data_dir)
        document = data_dir / "demo.json"
        document.write_text("{}")
        document.chmod(0o644)  # an older run's copy
        write_json(document, {"secret_key": key})
    key_file = data_dir / "secret.key"
    assert mode(key_file) == 0o600
    assert mode(document) == 0o600
    for path in (key_file, document):
        read = as_nobody("cat", str(path))
        assert read.returncode != 0 and "Permission denied" in read.stderr
    key_file.chmod(0o644)
    assert load_or_create_key(data_dir) == key
    assert mode(key_file) == 0o600
