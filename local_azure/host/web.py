"""The plain request and reply the HTTP front end, Easy Auth and the function dispatch pass around."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class IncomingRequest:
    method: str
    path: str  # decoded path, no query
    query_string: str
    headers: list[tuple[str, str]]  # in arrival order; names as sent
    body: bytes
    scheme: str = "http"

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    @property
    def query(self) -> dict[str, str]:
        # The runtime joins repeated query keys with commas.
        joined: dict[str, str] = {}
        for key, value in parse_qsl(self.query_string, keep_blank_values=True):
            joined[key] = f"{joined[key]},{value}" if key in joined else value
        return joined

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.header('Host') or 'localhost'}"

    @property
    def path_and_query(self) -> str:
        return self.path + (f"?{self.query_string}" if self.query_string else "")

    @property
    def cookies(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for key, value in self.headers:
            if key.lower() == "cookie":
                for pair in value.split(";"):
                    name, _, cookie = pair.strip().partition("=")
                    if name:
                        found.setdefault(name, cookie)
        return found


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, document: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
        return cls(status, [("Content-Type", "application/json; charset=utf-8"), *(headers or [])],
                   json.dumps(document).encode())

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8",
             headers: list[tuple[str, str]] | None = None) -> Reply:
        return cls(status, [("Content-Type", content_type), *(headers or [])], text.encode())

    @classmethod
    def redirect(cls, location: str, headers: list[tuple[str, str]] | None = None) -> Reply:
        return cls(302, [("Location", location), *(headers or [])])
