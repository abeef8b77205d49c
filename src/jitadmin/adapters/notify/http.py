"""POSTing a notification to a webhook, Slack or Teams URL, through the egress policy.

The receiver's answer is classified, never quoted: its body could be anything, and the error
ends up in the channel's ``last_error`` shown to admins.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from jitadmin.adapters.egress import egress_client
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.errors import RejectedError, TransientError

# Worth another try later: the receiver is overloaded, restarting or rate-limiting us.
_RETRYABLE = {408, 425, 429}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


class HttpNotificationSender:
    def __init__(self, policy: EgressPolicy, timeout_s: float = 10.0) -> None:
        # A short timeout: a slow receiver must not hold a worker thread for long.
        self._client = egress_client(policy, timeout=timeout_s, follow_redirects=False)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        try:
            response = self._client.post(url, content=body, headers=dict(headers))
        except httpx.HTTPError as error:
            raise TransientError(f"could not reach the receiver ({type(error).__name__})") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        if status >= 500 or status in _RETRYABLE:
            raise TransientError(
                f"the receiver answered HTTP {status}", retry_after_s=_retry_after(response)
            )
        raise RejectedError(f"the receiver refused the notification with HTTP {status}")

    def close(self) -> None:
        self._client.close()
