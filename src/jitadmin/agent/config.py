"""The agent's configuration file: everything ``run`` needs, the DC credential and the
private key included, so it is written with mode 0600 (atomically, never world-readable)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_GRACE_S = 300.0
DEFAULT_POLL_S = 25.0


@dataclass(frozen=True)
class DcSettings:
    url: str
    bind_user: str
    bind_password: str = field(repr=False)
    ca_pem: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AgentConfig:
    server: str  # https://jitadmin.example.com
    agent_id: str
    customer: str
    name: str
    private_key: str = field(repr=False)  # base64 of the raw 32-byte Ed25519 private key
    dc: DcSettings = field(repr=False, default=DcSettings("", "", ""))
    server_ca_pem: str | None = field(default=None, repr=False)
    # How long past a grant's end the agent waits for the server before revoking it itself.
    failsafe_grace_seconds: float = DEFAULT_GRACE_S
    poll_seconds: float = DEFAULT_POLL_S
    state_dir: str = ""  # spool and fail-safe state; default: beside the config file

    def state_path(self, config_file: Path) -> Path:
        return Path(self.state_dir) if self.state_dir else config_file.with_suffix(".state")


def load(path: Path) -> AgentConfig:
    raw: dict[str, Any] = json.loads(path.read_text())
    dc = DcSettings(**raw.pop("dc"))
    return AgentConfig(dc=dc, **raw)


def write_private(path: Path, text: str) -> None:
    """``text`` to ``path`` with mode 0600 from its first byte, replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # mkstemp makes it 0600 on POSIX already; said again for clarity. Windows (before
        # Python 3.13) has no fchmod: there the directory's ACL protects it (docs/connectors.md).
        if hasattr(os, "fchmod"):
            os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save(path: Path, config: AgentConfig) -> None:
    write_private(path, json.dumps(asdict(config), indent=2) + "\n")
