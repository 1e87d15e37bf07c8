"""A minimal OpenID Connect provider for the host's Easy Auth tests: discovery, JWKS, a login form,
the authorization-code grant (with PKCE) and minted access tokens. Only what the tests need; the
project's Entra stand-in (`local_azure.entra`) is the full one."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "5e1f0a4b-0000-4000-8000-0000000a5e00"
CLIENT_SECRET = "sample-client-secret"
API_AUDIENCE = "api://sample"
USERS = {
    "alice@contoso.test": {"oid": "a11ce000-0000-4000-8000-000000000001", "name": "Alice", "roles": ["Gates.Approver"]},
}
PASSWORD = "Passw0rd!"


class TinyOidcProvider:
    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = "k1"
        self._codes: dict[str, dict[str, Any]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/tenant/v2.0"

    def start(self) -> TinyOidcProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def mint(self, audience: str = API_AUDIENCE, lifetime: float = 3600, username: str = "alice@contoso.test",
             key: rsa.RSAPrivateKey | None = None, **extra: Any) -> str:
        user = USERS[username]
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": audience, "iat": now, "nbf": now, "exp": int(now + lifetime),
                  "oid": user["oid"], "sub": user["oid"], "tid": "tenant", "name": user["name"],
                  "preferred_username": username, "roles": user["roles"], **extra}
        return jwt.encode(claims, key or self._key, algorithm="RS256", headers={"kid": self.key_id})

    def _jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**public, "kid": self.key_id, "use": "sig", "alg": "RS256"}]}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: str, content_type: str = "application/json",
                       location: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                base = provider.issuer
                if split.path == "/tenant/v2.0/.well-known/openid-configuration":
                    self._reply(200, json.dumps({
                        "issuer": base, "authorization_endpoint": f"{base}/authorize",
                        "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/keys"}))
                elif split.path == "/tenant/v2.0/keys":
                    self._reply(200, json.dumps(provider._jwks()))
                elif split.path == "/tenant/v2.0/authorize":
                    hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                                     for k, v in parse_qsl(split.query))
                    self._reply(200, f'<html><form method="post" action="/tenant/v2.0/authorize">{hidden}'
                                     '<input type="email" name="login"><input type="password" name="passwd">'
                                     '<input type="submit" value="Sign in"></form></html>', "text/html")
                else:
                    self._reply(404, "{}")

            def do_POST(self) -> None:
                form = dict(parse_qsl(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()))
                if self.path == "/tenant/v2.0/authorize":
                    if form.get("login") not in USERS or form.get("passwd") != PASSWORD:
                        self._reply(200, "<html>wrong password</html>", "text/html")
                        return
                    code = secrets.token_urlsafe(16)
                    provider._codes[code] = form
                    target = f"{form['redirect_uri']}?{urlencode({'code': code, 'state': form['state']})}"
                    self._reply(302, "", "text/plain", location=target)
                elif self.path == "/tenant/v2.0/token":
                    granted = provider._codes.pop(form.get("code", ""), None)
                    verifier = form.get("code_verifier", "")
                    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
                    if (granted is None or form.get("client_secret") != CLIENT_SECRET
                            or challenge.decode() != granted.get("code_challenge")
                            or form.get("redirect_uri") != granted["redirect_uri"]):
                        self._reply(400, json.dumps({"error": "invalid_grant"}))
                        return
                    username = granted["login"]
                    id_token = provider.mint(CLIENT_ID, username=username, nonce=granted["nonce"])
                    self._reply(200, json.dumps({
                        "token_type": "Bearer", "expires_in": 3600, "id_token": id_token,
                        "access_token": provider.mint(API_AUDIENCE, username=username, scp="user_impersonation"),
                        "refresh_token": "opaque-refresh"}))
                else:
                    self._reply(404, "{}")

        return Handler
