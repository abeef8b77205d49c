"""What the agent could not send yet: steps and results, kept on disk in order and sent
when the server is back. Each message is one file written atomically (0600); a message is
deleted only after the server accepted it (the server ignores a repeat), so a crash or a
SIGKILL at any point loses nothing and doubles nothing."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jitadmin.agent.client import ServerRefusedError
from jitadmin.agent.config import write_private

log = logging.getLogger("jitadmin.agent")


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory / "spool"
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._sequence = 0

    def put(self, path: str, body: dict[str, Any]) -> None:
        self._sequence += 1
        name = f"{time.time_ns():020d}-{self._sequence:06d}.json"
        write_private(self.directory / name, json.dumps({"path": path, "body": body}))

    def pending(self) -> list[Path]:
        return sorted(self.directory.glob("*.json"))

    def __len__(self) -> int:
        return len(self.pending())

    def flush(self, send: Callable[[str, dict[str, Any]], object]) -> int:
        """Send every message in order; stops at the first one the server cannot take now
        (``ServerUnreachableError`` propagates). Returns how many were delivered."""
        sent = 0
        for item in self.pending():
            message = json.loads(item.read_text())
            try:
                send(message["path"], message["body"])
            except ServerRefusedError as refused:
                if refused.status == 401:
                    raise  # revoked, or the clock is off: keep the message, stop here
                # 404/409/422: the job is gone or was finished; the message has no use left.
                log.warning("spooled %s refused (%s); dropped", message["path"], refused)
            item.unlink()
            sent += 1
        return sent
