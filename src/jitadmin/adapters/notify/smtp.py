"""Email notifications over SMTP (smtplib): STARTTLS before any credential, then a plain-text
message. The server's replies are classified, never quoted."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage

from jitadmin.core.errors import MisconfiguredError, RejectedError, TransientError


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        timeout_s: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self._username, self._password = username, password
        self._starttls = starttls
        self._timeout_s = timeout_s
        self._tls = tls_context or ssl.create_default_context()

    def send(self, to: Sequence[str], subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message.set_content(text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self._timeout_s) as smtp:
                if self._starttls:
                    smtp.starttls(context=self._tls)
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError:
            raise MisconfiguredError("the SMTP server refused the credentials") from None
        except smtplib.SMTPNotSupportedError:
            raise MisconfiguredError("the SMTP server offers no STARTTLS or AUTH") from None
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as error:
            code = getattr(error, "smtp_code", None)
            if isinstance(code, int) and 400 <= code < 500:
                raise TransientError(f"the SMTP server deferred the mail ({code})") from None
            raise RejectedError("the SMTP server refused the sender or the recipients") from None
        except smtplib.SMTPResponseException as error:
            if 400 <= error.smtp_code < 500:
                raise TransientError(
                    f"the SMTP server deferred the mail ({error.smtp_code})"
                ) from None
            raise RejectedError(f"the SMTP server refused the mail ({error.smtp_code})") from None
        except (OSError, smtplib.SMTPException) as error:
            raise TransientError(
                f"could not reach the SMTP server ({type(error).__name__})"
            ) from None
