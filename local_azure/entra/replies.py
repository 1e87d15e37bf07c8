"""What a handler answers, before the HTTP server writes it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from local_azure.entra.errors import OAuthError

# Entra's token responses must never be cached or framed; pages are ours and plain.
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
PAGE_HEADERS = {
    **NO_STORE,
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                               "form-action *; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, document: Any, status: int = 200, cache: bool = False) -> Reply:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if not cache:
            headers.update(NO_STORE)
        return cls(status, json.dumps(document).encode(), headers)

    @classmethod
    def oauth_error(cls, error: OAuthError, correlation_id: str | None = None) -> Reply:
        return cls.json(error.body(correlation_id), status=error.status)

    @classmethod
    def page(cls, html_text: str, status: int = 200) -> Reply:
        return cls(status, html_text.encode(), {"Content-Type": "text/html; charset=utf-8", **PAGE_HEADERS})

    @classmethod
    def redirect(cls, location: str) -> Reply:
        return cls(302, b"", {"Location": location, **NO_STORE})
