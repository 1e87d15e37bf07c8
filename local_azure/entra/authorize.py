"""`/{tenant}/oauth2/v2.0/authorize`: the sign-in page of the authorization-code flow.

Errors before the redirect URI is known to be registered are shown on a page (sending them to an
unregistered URI would make the endpoint an open redirector); errors after that go back to the
client as `error`/`error_description`/`state` parameters, as OAuth 2.0 §4.1.2.1 says.
"""

from __future__ import annotations

import datetime as dt
import hmac
import html
import secrets
from collections.abc import Mapping
from urllib.parse import urlencode

from local_azure.entra.directory import Directory
from local_azure.entra.errors import OAuthError
from local_azure.entra.grants import AuthorizeRequest, GrantStore
from local_azure.entra.replies import Reply
from local_azure.entra.tokens import Lifetimes

RESPONSE_MODES = ("query", "fragment", "form_post")
FLOW_LIFETIME = dt.timedelta(minutes=15)

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f2f2f2;color:#1b1b1b}
main{max-width:26rem;margin:2rem auto;padding:1.5rem;background:#fff;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:1.5rem;margin:0 0 .5rem}p{line-height:1.4}label{display:block;margin-top:1rem;font-weight:600}
input[type=text],input[type=email],input[type=password]{width:100%;box-sizing:border-box;font-size:1.1rem;
padding:.6rem;margin-top:.3rem;border:1px solid #888}
button{margin-top:1.5rem;width:100%;font-size:1.1rem;padding:.7rem;background:#0067b8;color:#fff;border:0}
.error{color:#a4262c;font-weight:600}.small{font-size:.85rem;color:#555}code{word-break:break-all}
"""


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><main>{body}</main></body></html>")


def error_page(error: OAuthError) -> Reply:
    body = error.body()
    return Reply.page(_page("Sign in - error", (
        "<h1>Sorry, but we're having trouble signing you in.</h1>"
        f'<p class="error">{html.escape(body["error_description"].splitlines()[0])}</p>'
        f'<p class="small">Error: <code>{html.escape(error.error)}</code><br>'
        f'Trace ID: <code>{html.escape(body["trace_id"])}</code><br>'
        f'Timestamp: <code>{html.escape(body["timestamp"])}</code></p>')), status=400)


class AuthorizeEndpoint:
    def __init__(self, directory: Directory, grants: GrantStore, lifetimes: Lifetimes) -> None:
        self.directory = directory
        self.grants = grants
        self.lifetimes = lifetimes

    def get(self, params: Mapping[str, str], action: str) -> Reply:
        client_id = params.get("client_id", "")
        if not client_id:
            return error_page(OAuthError.missing_parameter("client_id"))
        client = self.directory.app(client_id)
        if client is None:
            return error_page(OAuthError.unknown_client(client_id, self.directory.tenant_id))
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri or not client.accepts_redirect(redirect_uri):
            return error_page(OAuthError(
                "invalid_request", 50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
                f"configured for the application '{client_id}'. Make sure the redirect URI sent in the request "
                "matches one added to your application in the Azure portal."))
        response_mode = params.get("response_mode", "query")
        state = params.get("state")
        if response_mode not in RESPONSE_MODES:
            return _to_client(redirect_uri, "query", state, error=OAuthError(
                "invalid_request", 900144, "The provided value for the input parameter 'response_mode' is not valid."))
        try:
            response_type = params.get("response_type", "")
            if not response_type:
                raise OAuthError.missing_parameter("response_type")
            if response_type != "code":
                raise OAuthError("unsupported_response_type", 700054,
                                 f"response_type '{response_type}' is not enabled for the application.")
            scope = params.get("scope", "")
            if not scope:
                raise OAuthError.missing_parameter("scope")
            self.directory.parse_scope(scope)
            challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
            if challenge and (method or "plain") not in ("S256", "plain"):
                raise OAuthError("invalid_request", 501491,
                                 "The code_challenge_method is not valid: use 'S256' (or 'plain').")
            if params.get("prompt") == "none":
                # No single sign-on session here: every sign-in shows the page.
                raise OAuthError("login_required", 50058,
                                 "A silent sign-in request was sent but no user is signed in.")
        except OAuthError as error:
            return _to_client(redirect_uri, response_mode, state, error=error)
        request = AuthorizeRequest(
            client_id=client_id, redirect_uri=redirect_uri, scope=scope, state=state, nonce=params.get("nonce"),
            code_challenge=challenge, code_challenge_method=(method or "plain") if challenge else None,
            response_mode=response_mode, login_hint=params.get("login_hint", ""),
            expires_at=dt.datetime.now(dt.UTC) + FLOW_LIFETIME)
        flow = self.grants.start_flow(request)
        return self._sign_in_page(flow, request, client.name, action, problem=None)

    def post(self, form: Mapping[str, str], action: str) -> Reply:
        flow = form.get("flow", "")
        request = self.grants.flow(flow) if flow else None
        if request is None:
            return error_page(OAuthError("invalid_request", 50089,
                                         "Authentication failed due to flow token expired. Start the sign-in again."))
        client = self.directory.app(request.client_id)
        client_name = client.name if client else request.client_id
        user = self.directory.user(form.get("username", ""))
        password = form.get("password", "")
        if user is None or not hmac.compare_digest(password.encode(), user.password.encode()):
            return self._sign_in_page(flow, request, client_name, action,
                                      problem="Your account or password is incorrect.",
                                      username=form.get("username", ""))
        request, code = self.grants.finish_flow(flow, user.oid, self.lifetimes.authorization_code)
        return _to_client(request.redirect_uri, request.response_mode, request.state, code=code)

    def _sign_in_page(self, flow: str, request: AuthorizeRequest, client_name: str, action: str,
                      problem: str | None, username: str | None = None) -> Reply:
        username = request.login_hint if username is None else username
        scopes = ", ".join(request.scope.split())
        problem_html = f'<p class="error" role="alert">{html.escape(problem)}</p>' if problem else ""
        return Reply.page(_page("Sign in to your account", (
            f"<h1>Sign in</h1><p>to continue to <strong>{html.escape(client_name)}</strong> "
            f"({html.escape(self.directory.tenant_name)})</p>{problem_html}"
            f'<form method="post" action="{html.escape(action)}">'
            f'<input type="hidden" name="flow" value="{html.escape(flow)}">'
            '<label for="username">Email or username</label>'
            f'<input type="email" id="username" name="username" value="{html.escape(username)}" '
            'autocomplete="username" autocapitalize="none" required autofocus>'
            '<label for="password">Password</label>'
            '<input type="password" id="password" name="password" autocomplete="current-password" required>'
            '<button type="submit">Sign in</button></form>'
            f'<p class="small">Permissions requested: <code>{html.escape(scopes)}</code></p>'
            '<p class="small">Local Entra ID stand-in. Test accounts only.</p>')))


def _to_client(redirect_uri: str, response_mode: str, state: str | None, *, code: str | None = None,
               error: OAuthError | None = None) -> Reply:
    parameters: dict[str, str] = {}
    if code is not None:
        parameters["code"] = code
    if error is not None:
        body = error.body()
        parameters.update(error=error.error, error_description=body["error_description"],
                          error_uri=body["error_uri"])
    if state is not None:
        parameters["state"] = state
    if code is not None:
        parameters["session_state"] = secrets.token_hex(16)
    if response_mode == "form_post":
        fields = "".join(f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
                         for name, value in parameters.items())
        return Reply.page(_page("Working...", (
            f'<form method="post" action="{html.escape(redirect_uri)}" id="response">{fields}'
            '<noscript><button type="submit">Continue</button></noscript></form>'
            "<script>document.getElementById('response').submit()</script>")))
    separator = "#" if response_mode == "fragment" else ("&" if "?" in redirect_uri else "?")
    return Reply.redirect(f"{redirect_uri}{separator}{urlencode(parameters)}")
