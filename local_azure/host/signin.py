"""Signing in through App Service Authentication the way a person does, with `requests`.

`sign_in(host_base_url, username, password)` opens `/.auth/login/aad`, follows the redirect to the
identity provider's sign-in form, fills in the username and password, and follows the redirects
back until the host has set its `AppServiceAuthSession` cookie. The returned session carries that
cookie, so every request made with it is the signed-in person's. For end-to-end tests and the demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

from local_azure.host.easy_auth import SESSION_COOKIE

TIMEOUT_SECONDS = 15.0
MAX_FORMS = 4  # the sign-in form, and perhaps a consent or form_post page after it
_USERNAME_NAMES = ("username", "login", "loginfmt", "email", "user")


class SignInFailed(Exception):
    """The identity provider or the host did not complete the sign-in."""


@dataclass
class _Form:
    action: str = ""
    method: str = "get"
    fields: dict[str, str] = field(default_factory=dict)
    username_field: str | None = None
    password_field: str | None = None


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(_Form(action=values.get("action", ""), method=values.get("method", "get").lower()))
            return
        if tag not in ("input", "button") or not self.forms or not values.get("name"):
            return
        form, name, kind = self.forms[-1], values["name"], values.get("type", "text").lower()
        if kind == "password":
            form.password_field = name
        elif kind in ("email", "text") and (form.username_field is None or name.lower() in _USERNAME_NAMES):
            form.username_field = name
        elif kind in ("hidden",) or (kind == "submit" and name not in form.fields):
            form.fields[name] = values.get("value", "")


def _first_form(page: requests.Response) -> _Form | None:
    if "html" not in page.headers.get("Content-Type", ""):
        return None
    parser = _FormParser()
    parser.feed(page.text)
    return parser.forms[0] if parser.forms else None


def sign_in(host_base_url: str, username: str, password: str,
            session: requests.Session | None = None) -> requests.Session:
    session = session or requests.Session()
    page = session.get(f"{host_base_url.rstrip('/')}/.auth/login/aad",
                       params={"post_login_redirect_uri": "/.auth/login/done"}, timeout=TIMEOUT_SECONDS)
    for _ in range(MAX_FORMS):
        if session.cookies.get(SESSION_COOKIE):
            return session
        form = _first_form(page)
        if form is None:
            break
        data = dict(form.fields)
        if form.password_field:
            data[form.password_field] = password
            if form.username_field:
                data[form.username_field] = username
        target = urljoin(page.url, form.action or page.url)
        if form.method == "post":
            page = session.post(target, data=data, timeout=TIMEOUT_SECONDS)
        else:
            page = session.get(target, params=data, timeout=TIMEOUT_SECONDS)
    if session.cookies.get(SESSION_COOKIE):
        return session
    raise SignInFailed(f"sign-in as {username} did not complete: {page.status_code} at {page.url}: {page.text[:300]!r}")
