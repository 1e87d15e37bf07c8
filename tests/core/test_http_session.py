"""The app's HTTP session settles what requests settles from the environment, looking proxies up once per origin."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from shared.adapters import http_session
from shared.adapters.http_session import OncePerOriginProxies

URLS = ("https://management.test/subscriptions/s?api-version=1", "http://127.0.0.1:10002/devstoreaccount1/runs",
        "https://internal.test/x")


def settled(session: requests.Session, url: str, verify: Any = True) -> dict[str, Any]:
    return session.merge_environment_settings(url, {}, None, verify, None)


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,internal.test")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/local-ca.pem")


@pytest.mark.usefixtures("proxied")
@pytest.mark.parametrize("url", URLS)
def test_settles_proxies_and_the_ca_bundle_as_requests_does(url: str) -> None:
    assert settled(OncePerOriginProxies(), url) == settled(requests.Session(), url)


@pytest.mark.usefixtures("proxied")
def test_a_proxy_from_the_environment_is_used_and_no_proxy_honoured() -> None:
    session = OncePerOriginProxies()
    assert settled(session, URLS[0])["proxies"]["https"] == "http://proxy.test:3128"
    assert "http" not in settled(session, URLS[1])["proxies"]


@pytest.mark.usefixtures("proxied")
def test_a_verify_given_by_the_caller_is_kept() -> None:
    assert settled(OncePerOriginProxies(), URLS[0], verify="/etc/ssl/other.pem")["verify"] == "/etc/ssl/other.pem"


def test_the_environment_is_read_once_per_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []
    real = http_session.get_environ_proxies

    def counted(url: str, no_proxy: str | None = None) -> dict[str, str]:
        lookups.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(http_session, "get_environ_proxies", counted)
    session = OncePerOriginProxies()
    for path in ("runs", "runs(PartitionKey='a')", "$batch"):
        settled(session, f"http://127.0.0.1:10002/devstoreaccount1/{path}")
    settled(session, URLS[0])
    assert len(lookups) == 2


def test_a_netrc_is_never_read_nor_its_password_sent(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    url = "http://127.0.0.1:10002/devstoreaccount1/runs"
    # requests itself adds the .netrc password:
    assert "Authorization" in requests.Session().prepare_request(requests.Request("GET", url)).headers
    assert "Authorization" not in OncePerOriginProxies().prepare_request(requests.Request("GET", url)).headers
