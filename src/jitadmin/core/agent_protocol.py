"""The on-prem agent's wire protocol, shared by the server and the agent (docs/security.md).

Every agent request is signed with the agent's own Ed25519 key. The signed text names the
method, the path with its query, a timestamp, a random nonce and the SHA-256 of the body, so
an altered request fails the signature and a replayed one meets a nonce already seen (or a
timestamp outside the allowed skew). Pure: the signing itself (``cryptography``) is done by
the callers.
"""

from __future__ import annotations

import hashlib
import re

SIGNATURE_VERSION = "jitadmin-agent-v1"
HEADER_AGENT = "X-Jitadmin-Agent"
HEADER_TIMESTAMP = "X-Jitadmin-Timestamp"
HEADER_NONCE = "X-Jitadmin-Nonce"
HEADER_SIGNATURE = "X-Jitadmin-Signature"
# How far an agent's clock may be from the server's; nonces are kept twice as long.
MAX_SKEW_S = 300
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

# Job kinds (one step of a grant, handed to an agent).
JOB_GRANT = "grant"
JOB_REVOKE = "revoke"
JOB_EXTEND = "extend"
JOB_KINDS = (JOB_GRANT, JOB_REVOKE, JOB_EXTEND)
# Job states: pending (nobody has it), leased (an agent works on it until lease_expires_at),
# done / failed (its result is in), retired (a failed result the worker has taken note of).
PENDING, LEASED, DONE, FAILED, RETIRED = "pending", "leased", "done", "failed", "retired"

# The progress steps an agent may report for a grant (what the AD adapter records), plus the
# fail-safe's own: anything else is refused.
AGENT_STEPS = frozenset(
    {
        "account_created", "account_reused", "password_set", "hardened", "expiry_set",
        "enabled", "group_added", "verified_granted", "account_found", "group_removed",
        "disabled", "password_reset", "admin_count_cleared", "verified_revoked",
        "tampering_detected", "failsafe_revoked",
    }
)  # fmt: skip
# The error kinds a failed job may carry, each one of the adapter taxonomy's classes.
ERROR_KINDS = ("transient", "not_found", "already_exists", "rejected", "misconfigured")


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def signed_text(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the agent signs: one line each, so no field can run into the next."""
    return "\n".join(
        (SIGNATURE_VERSION, method.upper(), path, timestamp, nonce, body_digest(body))
    ).encode()
