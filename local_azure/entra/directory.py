"""The tenant's directory as the stand-in knows it: apps, the resources they call, users.

Loaded from `local_azure/fixtures/entra.json` (or a test's own file). Scopes are resolved the way
the v2.0 endpoint resolves them: `<resource identifier>/<scope>` or `<resource>/.default`, one
resource per request, OpenID Connect scopes beside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from local_azure.entra.errors import OAuthError

DEFAULT_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "entra.json"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


@dataclass(frozen=True)
class Resource:
    """Something a token can be for: an API exposed by an app registration, or a Microsoft API."""

    name: str
    app_id: str
    identifier_uris: tuple[str, ...]
    audience: str
    scopes: tuple[str, ...]
    app_roles: tuple[str, ...] = ()

    @property
    def primary_uri(self) -> str:
        return self.identifier_uris[0] if self.identifier_uris else self.app_id

    def names(self) -> tuple[str, ...]:
        return (*self.identifier_uris, self.app_id)


@dataclass(frozen=True)
class App:
    name: str
    client_id: str
    service_principal_id: str
    client_secrets: tuple[str, ...]
    allow_public_client: bool
    redirect_uris: tuple[str, ...]
    delegated_permissions: Mapping[str, tuple[str, ...]]
    application_permissions: Mapping[str, tuple[str, ...]]
    resource: Resource | None  # what the app exposes, if anything

    def accepts_redirect(self, uri: str) -> bool:
        return any(_redirect_matches(registered, uri) for registered in self.redirect_uris)


@dataclass(frozen=True)
class User:
    oid: str
    upn: str
    name: str
    password: str
    app_roles: Mapping[str, tuple[str, ...]]
    flags: Mapping[str, Any] = field(default_factory=dict)

    def roles_for(self, resource: Resource) -> list[str]:
        return list(self.app_roles.get(resource.app_id, ()))

    def mfa_required_for(self, resource: Resource) -> bool:
        return any(name in resource.names() for name in self.flags.get("mfa_required_for", []))

    def consent_missing_for(self, resource: Resource) -> bool:
        return any(name in resource.names() for name in self.flags.get("consent_missing_for", []))


@dataclass(frozen=True)
class ScopeRequest:
    """What a `scope` parameter asked for: a resource and its scopes, and the OIDC scopes beside them."""

    resource: Resource
    scopes: tuple[str, ...]  # scope values on the resource, `.default` expanded
    oidc: frozenset[str]
    default: bool

    def granted(self) -> str:
        """The `scope` of the token response: what the access token carries, as full names."""
        prefix = self.resource.primary_uri
        names = [f"{prefix}/{scope}" for scope in self.scopes if scope not in OIDC_SCOPES]
        if self.resource.app_id == GRAPH_APP_ID:
            names = [scope for scope in self.scopes if scope not in OIDC_SCOPES]
        return " ".join([*names, *sorted(self.oidc - {"offline_access"})])


class Directory:
    def __init__(self, document: Mapping[str, Any]) -> None:
        tenant = document["tenant"]
        self.tenant_id: str = tenant["id"]
        self.tenant_name: str = tenant.get("name", self.tenant_id)
        self.domain: str = tenant.get("domain", "")
        self.resources: list[Resource] = [
            Resource(name=r["name"], app_id=r["app_id"], identifier_uris=tuple(r.get("identifier_uris", [])),
                     audience=r.get("audience", r["app_id"]), scopes=tuple(r.get("scopes", [])))
            for r in document.get("resources", [])
        ]
        self.apps: dict[str, App] = {}
        for raw in document.get("apps", []):
            exposed = None
            if raw.get("identifier_uris") or raw.get("scopes") or raw.get("app_roles"):
                exposed = Resource(
                    name=raw["name"], app_id=raw["client_id"], identifier_uris=tuple(raw.get("identifier_uris", [])),
                    audience=raw["client_id"],  # v2.0 access tokens for an app's own API carry its client id
                    scopes=tuple(raw.get("scopes", [])),
                    app_roles=tuple(role["value"] for role in raw.get("app_roles", [])),
                )
                self.resources.append(exposed)
            self.apps[raw["client_id"]] = App(
                name=raw["name"], client_id=raw["client_id"], service_principal_id=raw["service_principal_id"],
                client_secrets=tuple(raw.get("client_secrets", [])),
                allow_public_client=bool(raw.get("allow_public_client", False)),
                redirect_uris=tuple(raw.get("redirect_uris", [])),
                delegated_permissions={k: tuple(v) for k, v in raw.get("delegated_permissions", {}).items()},
                application_permissions={k: tuple(v) for k, v in raw.get("application_permissions", {}).items()},
                resource=exposed,
            )
        self.users: list[User] = [
            User(oid=u["oid"], upn=u["upn"], name=u.get("name", u["upn"]), password=u["password"],
                 app_roles={k: tuple(v) for k, v in u.get("app_roles", {}).items()}, flags=u.get("flags", {}))
            for u in document.get("users", [])
        ]

    @classmethod
    def load(cls, path: Path | None = None) -> Directory:
        return cls(json.loads((path or DEFAULT_FIXTURE).read_text(encoding="utf-8")))

    def knows_tenant(self, name: str) -> bool:
        return name.lower() in {self.tenant_id.lower(), self.domain.lower()} - {""}

    def app(self, client_id: str) -> App | None:
        return self.apps.get(client_id)

    def user(self, name_or_oid: str) -> User | None:
        wanted = name_or_oid.strip().lower()
        return next((u for u in self.users if wanted in (u.oid.lower(), u.upn.lower())), None)

    def resource(self, name: str) -> Resource | None:
        wanted = name.rstrip("/").lower()
        return next((r for r in self.resources if wanted in (n.rstrip("/").lower() for n in r.names())), None)

    def graph(self) -> Resource:
        graph = self.resource(GRAPH_APP_ID)
        if graph is None:
            return Resource("Microsoft Graph", GRAPH_APP_ID, ("https://graph.microsoft.com",), GRAPH_APP_ID,
                            ("User.Read",))
        return graph

    def parse_scope(self, scope: str) -> ScopeRequest:
        """Split a `scope` parameter into one resource's scopes and the OIDC scopes, or refuse it."""
        words = scope.split()
        if not words:
            raise OAuthError.missing_scope()
        oidc = frozenset(word for word in words if word in OIDC_SCOPES)
        by_resource: dict[Resource, list[str]] = {}
        for word in words:
            if word in OIDC_SCOPES:
                continue
            resource, value = self._split_scope(word)
            by_resource.setdefault(resource, []).append(value)
        if len(by_resource) > 1:
            raise OAuthError.invalid_scope(
                28000, "Provided value for the input parameter scope is not valid because it contains more than one "
                "resource. Scope " + scope + " is not valid.")
        if not by_resource:  # only OIDC scopes: the access token is for Microsoft Graph, as in Entra
            graph = self.graph()
            return ScopeRequest(graph, tuple(s for s in graph.scopes if s == "User.Read"), oidc, default=False)
        resource, values = next(iter(by_resource.items()))
        default = ".default" in values
        if default and len(values) > 1:
            raise OAuthError.invalid_scope(
                70011, f"The provided request must include a 'scope' input parameter. The provided value for the "
                f"input parameter 'scope' is not valid. The scope {scope} is not valid. static scope limit exceeded.")
        return ScopeRequest(resource, tuple(values), oidc, default=default)

    def _split_scope(self, word: str) -> tuple[Resource, str]:
        resource_name, _, value = word.rpartition("/")
        if not resource_name:
            # A bare name like `User.Read` is a Microsoft Graph scope.
            resource_name, value = GRAPH_APP_ID, word
        resource = self.resource(resource_name)
        if resource is None:
            raise OAuthError.invalid_resource(resource_name, self.tenant_id)
        if value != ".default" and value not in resource.scopes:
            raise OAuthError.invalid_scope(
                70011, f"The provided value for the input parameter 'scope' is not valid. The scope {word} is not "
                "valid. The scope does not exist on the resource.")
        return resource, value

    def delegated_grant(self, app: App, request: ScopeRequest) -> tuple[str, ...] | None:
        """The scopes the app may use on the user's behalf for this resource; None: no consent at all."""
        consented: tuple[str, ...] | None = None
        for name in request.resource.names():
            for key, scopes in app.delegated_permissions.items():
                if key.rstrip("/").lower() == name.rstrip("/").lower():
                    consented = (*(consented or ()), *scopes)
        if consented is None:
            return None
        if request.default:
            return tuple(dict.fromkeys(s for s in consented if s not in OIDC_SCOPES))
        missing = [s for s in request.scopes if s not in consented]
        return None if missing else request.scopes

    def application_grant(self, app: App, resource: Resource) -> tuple[str, ...] | None:
        for name in resource.names():
            for key, roles in app.application_permissions.items():
                if key.rstrip("/").lower() == name.rstrip("/").lower():
                    return roles
        return None


_LOOPBACK_WILDCARD = re.compile(r"^(?P<scheme>https?)://(?P<host>[^/:]+):\*(?P<path>/.*)?$")


def _redirect_matches(registered: str, uri: str) -> bool:
    if registered == uri:
        return True
    # Entra ignores the port of loopback redirect URIs (RFC 8252 §7.3); `:*` in the fixture says so.
    wildcard = _LOOPBACK_WILDCARD.match(registered)
    if wildcard is None:
        return False
    parts = urlsplit(uri)
    try:
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return False
    return (parts.scheme == wildcard["scheme"] and parts.hostname == wildcard["host"]
            and (parts.path or "/") == (wildcard["path"] or "/") and not parts.query and not parts.fragment)
