"""E-mail to people: Azure Communication Services in Azure, SMTP on the local runtime."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any


class SmtpNotifier:
    def __init__(self, host: str, port: int, sender: str) -> None:
        self._host = host
        self._port = port
        self._sender = sender

    def send(self, to: Sequence[str], subject: str, text: str, html: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        with smtplib.SMTP(self._host, self._port, timeout=10) as smtp:
            smtp.send_message(message)


class AcsEmailNotifier:
    def __init__(self, endpoint: str, sender: str, credential: Any) -> None:
        from azure.communication.email import EmailClient

        self._client = EmailClient(endpoint, credential)
        self._sender = sender

    def send(self, to: Sequence[str], subject: str, text: str, html: str) -> None:
        poller = self._client.begin_send({
            "senderAddress": self._sender,
            "recipients": {"to": [{"address": address} for address in to]},
            "content": {"subject": subject, "plainText": text, "html": html},
        })
        poller.result(timeout=60)
