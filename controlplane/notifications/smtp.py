"""Email over SMTP (STARTTLS or implicit TLS, optional login): a plain-text part and an HTML
part. SMTP's own codes sort failures: 4xx and lost connections are retried, 5xx (a refused
recipient, a rejected login) are not."""

from __future__ import annotations

import html
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from pydantic import Field, SecretStr

from controlplane.domain.errors import PermanentError, TemporaryError
from controlplane.notifications._links import labelled
from controlplane.notifications.base import Channel, ChannelParams, facts, headline
from controlplane.notifications.events import Event


class EmailParams(ChannelParams):
    type: Literal["email"]
    host: str = Field(..., min_length=1)
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="none only for a relay on loopback."
    )
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(..., description="From: address.")
    to: list[str] = Field(..., min_length=1, description="Recipients.")


def compose(events: Sequence[Event], sender: str, to: list[str], key: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[aiops] {headline(events)}"[:250]
    message["From"], message["To"] = sender, ", ".join(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=key.replace("/", "."), domain="aiops.local")
    message["X-Aiops-Key"] = key
    text, rows = [], []
    for event in events:
        text.append(event.summary)
        text += [f"  {name}: {value}" for name, value in facts(event)]
        text += [f"  {label}: {url}" for _, label, url in labelled(event)]
        cells = "".join(
            f"<tr><th align='left'>{html.escape(n)}</th><td>{html.escape(v)}</td></tr>"
            for n, v in facts(event)
        )
        links = " · ".join(
            f"<a href='{html.escape(url)}'>{html.escape(label)}</a>"
            for _, label, url in labelled(event)
        )
        rows.append(f"<h3>{html.escape(event.summary)}</h3><table>{cells}</table><p>{links}</p>")
    message.set_content("\n".join(text) + "\n")
    message.add_alternative("<html><body>" + "".join(rows) + "</body></html>", subtype="html")
    return message


class Email(Channel[EmailParams]):
    name = "email"
    Params = EmailParams

    def send(self, events: Sequence[Event], *, key: str) -> str:
        p = self.params
        message = compose(events, p.sender, p.to, key)
        smtp_class = smtplib.SMTP_SSL if p.security == "tls" else smtplib.SMTP
        try:
            with smtp_class(p.host, p.port, timeout=p.timeout_seconds) as smtp:
                if p.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if p.username and p.password:
                    smtp.login(p.username, p.password.get_secret_value())
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"SMTP refused every recipient: {exc.recipients}") from None
        except smtplib.SMTPResponseException as exc:
            error = TemporaryError if 400 <= exc.smtp_code < 500 else PermanentError
            raise error(
                f"SMTP {p.host}:{p.port} answered {exc.smtp_code} {exc.smtp_error!r}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryError(f"SMTP {p.host}:{p.port} unreachable: {exc}") from None
        bad = f", refused {sorted(refused)}" if refused else ""
        return f"email to {len(p.to) - len(refused)} recipients{bad}"
