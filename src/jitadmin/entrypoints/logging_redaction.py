"""Log redaction by construction: every handler the CLI installs masks secrets on the way out.

The filter renders each record (message, arguments, traceback) once, masks anything that looks
like a secret, and hands the handler the masked text only. It works on patterns, so it also
catches a secret that reached a message by accident (an exception from a library quoting a
request, a debug dump of a settings dict).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from jitadmin.db.files import private_file

MASK = "[redacted]"
# Names of secrets (not secrets).
_SECRET_NAMES = (
    r"password|passwd|pwd|secret|client_secret|private_key|privatekey|bind_password|"  # noqa: S105
    r"api_key|apikey|token|access_token|refresh_token|id_token|secret_key|integration_code|"
    r"authorization|x-csrf-token|csrf_token|cookie|set-cookie|jitadmin_session"
)
_PATTERNS = (
    # "password": "x", password=x, 'client_secret': 'x', Authorization: Bearer x, ...
    re.compile(
        rf"""(?i)(["']?\b(?:{_SECRET_NAMES})\b["']?\s*[:=]\s*)"""
        r"""(b?"(?:[^"\\]|\\.)*"|b?'(?:[^'\\]|\\.)*'|(?:Bearer\s+|Basic\s+)?[^"'\s,;&}\]]+)"""
    ),
    re.compile(r"(?i)(\b(?:Bearer|Basic)\s+)([A-Za-z0-9._~+/=-]{8,})"),
    # An OpenID Connect authorization code in a URL (the access log's callback line).
    re.compile(r"([?&](?:code|code_verifier)=)([^&\s\"']+)"),
    # API tokens, sealed values and JWTs, wherever they appear.
    re.compile(r"()\bjit_[A-Za-z0-9_-]{16,}"),
    re.compile(r"()\bv1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{16,}"),
    re.compile(r"()\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
)


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Attach to handlers (not loggers): records from every logger pass through handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None  # the masked exc_text is what gets printed
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def install(level: int = logging.INFO, log_file: Path | None = None) -> list[logging.Handler]:
    """Configure the root logger with redacting handlers (stderr, and ``log_file`` if given)."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        handlers.append(logging.FileHandler(private_file(log_file), encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    # httpx/httpcore log every request at INFO: one line per Graph or PSA call is noise (and
    # CPU) in a storm; our clients log their own calls at DEBUG. DEBUG keeps them all.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING if level > logging.DEBUG else level)
    return handlers
