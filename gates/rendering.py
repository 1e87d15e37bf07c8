"""Pages and e-mails from templates (Jinja2), autoescaped, and the headers every page carries.

Every HTML template is autoescaped, so a field cannot be shown unescaped by forgetting to escape it;
only plain-text e-mail templates (`*.txt`, which hold no markup) are not. Undefined names fail loudly.
The one stylesheet is shipped inside the package and allowed by its hash, so the Content Security
Policy needs neither inline script nor `unsafe-inline`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

import azure.functions as func
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

TEMPLATES = "templates"
STYLESHEET = "gates.css"


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("gates", TEMPLATES),
        # Everything is escaped but plain-text e-mails (`.txt`), which hold no markup.
        autoescape=select_autoescape(enabled_extensions=("html",), disabled_extensions=("txt",),
                                     default_for_string=True, default=True),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.globals["stylesheet"] = stylesheet()
    return env


@cache
def stylesheet() -> Markup:
    """The stylesheet, our own file: trusted markup, and byte for byte what the CSP hash allows."""
    text = resources.files("gates").joinpath(TEMPLATES, STYLESHEET).read_text(encoding="utf-8")
    return Markup(text)  # noqa: S704 (our own packaged file, never input)


@cache
def content_security_policy() -> str:
    digest = base64.b64encode(hashlib.sha256(str(stylesheet()).encode("utf-8")).digest()).decode()
    return ("default-src 'none'; "
            f"style-src 'sha256-{digest}'; "
            "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def security_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def html_response(template: str, status: int = 200, **context: Any) -> func.HttpResponse:
    return func.HttpResponse(render(template, **context), status_code=status, mimetype="text/html",
                             charset="utf-8", headers=security_headers())


def json_response(document: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(document), status_code=status, mimetype="application/json",
                             headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


def redirect(location: str) -> func.HttpResponse:
    """303 See Other: the browser follows with a GET, so a refresh never posts the decision again."""
    return func.HttpResponse(status_code=303, headers={"Location": location, **security_headers()})


def wants_html(req: func.HttpRequest) -> bool:
    """A browser navigation (it asks for HTML); API callers keep their JSON or plain answers."""
    return "text/html" in req.headers.get("Accept", "")
