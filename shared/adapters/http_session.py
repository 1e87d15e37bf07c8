"""The HTTP session the app's Azure SDK clients (Table Storage, ARM) send through."""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

import requests
import requests.auth
from azure.core.pipeline.transport import RequestsTransport
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies


class _NoNetrc(requests.auth.AuthBase):
    """Stands where requests would otherwise look a ~/.netrc up on every request (two file-system checks):
    the SDK's own policies authenticate each request, and a .netrc password must never be added to one."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class OncePerOriginProxies(requests.Session):
    """A `requests.Session` that looks the environment's proxy settings (HTTPS_PROXY, NO_PROXY, ...) up once
    per origin instead of on every request. requests reads them by walking every environment variable, twice
    a request: a quarter of a millisecond with a Functions worker's app settings in the environment, on each
    table read, batch and ARM call of a hop. A worker's environment is fixed for its life (changing an app
    setting restarts it). Everything else is as requests does it, REQUESTS_CA_BUNDLE read on each request,
    except that no ~/.netrc is read (`_NoNetrc`)."""

    def __init__(self) -> None:
        super().__init__()
        self.auth = _NoNetrc()
        self._proxies: dict[tuple[str, str | None], dict[str, str]] = {}

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        if not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        no_proxy = proxies.get("no_proxy") if proxies is not None else None
        parts = urllib.parse.urlsplit(url)
        origin = (f"{parts.scheme}://{parts.netloc}", no_proxy)
        found = self._proxies.get(origin)
        if found is None:
            found = self._proxies[origin] = dict(get_environ_proxies(url, no_proxy=no_proxy))
        if proxies is not None:
            for scheme, proxy in found.items():
                proxies.setdefault(scheme, proxy)
        if verify is True or verify is None:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
        return {"proxies": merge_setting(proxies, self.proxies), "stream": merge_setting(stream, self.stream),
                "verify": merge_setting(verify, self.verify), "cert": merge_setting(cert, self.cert)}


def transport() -> RequestsTransport:
    """A transport of its own (its connections pooled) on a session that reads the proxy settings once."""
    return RequestsTransport(session=OncePerOriginProxies(), session_owner=True)
