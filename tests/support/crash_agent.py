"""`jitadmin agent run` that SIGKILLs itself right after the server accepted one chosen step.

Test-only; run as ``python tests/support/crash_agent.py CONFIG`` with
``JITADMIN_TEST_AGENT_CRASH_AFTER=<step>`` (unset: an ordinary agent). Nothing in production
code knows about it: it runs the same ``AgentRunner`` and wraps its sending, so once the
server has answered the report of ``<step>`` the process dies uncleanly, between two steps of a
job, its result never sent.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from jitadmin.agent import config as agent_config
from jitadmin.agent.runner import AgentRunner

CRASH_ENV = "JITADMIN_TEST_AGENT_CRASH_AFTER"


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    path = Path(sys.argv[1])
    runner = AgentRunner(agent_config.load(path), path)
    step = os.environ.get(CRASH_ENV)
    send = runner._send

    def crashing(where: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = send(where, body)
        if step and where.endswith("/steps") and body.get("step") == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return answer

    runner._send = crashing  # type: ignore[method-assign, assignment]
    runner.run()


if __name__ == "__main__":
    main()
