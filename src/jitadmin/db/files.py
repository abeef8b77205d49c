"""Files only this process's user may read: the data dir (0700), the SQLite database and its
journals, key files and other documents with secrets (0600). Independent of the umask."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

DIR_MODE = 0o700
FILE_MODE = 0o600
# SQLite's companions of a database file; it creates them with the database file's mode.
SQLITE_SUFFIXES = ("-wal", "-shm", "-journal")

log = logging.getLogger(__name__)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) with the directory itself 0700.

    An existing directory is left as the operator made it (it may be shared on purpose, or be
    the working directory); if others can enter it, a warning says so. The files we keep in it
    are 0600 either way."""
    if path.is_dir():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning(
                "data directory %s is mode %o: other users can list it (jitadmin keeps its "
                "files 0600; make it 0700)",
                path,
                mode,
            )
        return path
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask; this is exact
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists and is 0600: created so, or tightened if it is wider."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _tighten(path)
    else:
        os.fchmod(fd, FILE_MODE)
        os.close(fd)
    return path


def write_private(path: Path, text: str) -> None:
    """Replace the contents of ``path`` with ``text``; the file is 0600 before any byte lands."""
    private_file(path)
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def private_sqlite(url: str) -> None:
    """Before SQLite opens the database file of ``url``: create it 0600 (or tighten it), and
    tighten journals left by an earlier run. SQLite gives new journals the file's mode."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite reports the missing directory itself
    private_file(path)
    for suffix in SQLITE_SUFFIXES:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion)


def _tighten(path: Path) -> None:
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, FILE_MODE)
