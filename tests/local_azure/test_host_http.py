"""HTTP triggers: routing, methods, auth levels, request in and response out, as the Functions host does them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from local_azure.host import FunctionsHost
from tests.local_azure.sample_app.harness import running_host

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 10
FUNCTION_KEY = "sample-function-key"
MASTER_KEY = "sample-master-key"
BURST_CONNECT_SECONDS = 0.5  # under TCP's first resend of a dropped connection request (1 s)


@pytest.fixture(scope="module")
def host() -> Iterator[FunctionsHost]:
    settings = {
        "SAMPLE_SERVICEBUS": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
        "LOCAL_FUNCTION_KEYS": FUNCTION_KEY,
        "LOCAL_MASTER_KEY": MASTER_KEY,
        "SAMPLE_OVERRIDDEN": "from the host's settings",
    }
    with running_host(settings) as running:
        yield running


def get(host: FunctionsHost, path: str, **options: object) -> requests.Response:
    return requests.get(f"{host.base_url}{path}", timeout=TIMEOUT, allow_redirects=False, **options)  # type: ignore[arg-type]


def test_a_route_answers_with_its_route_parameters_and_query(host: FunctionsHost) -> None:
    response = get(host, "/api/items/42/widget?colour=red&size=L", headers={"x-functions-key": FUNCTION_KEY})

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["route_params"] == {"id": "42", "name": "widget"}
    assert response.json()["params"] == {"colour": "red", "size": "L"}
    assert response.json()["url"] == f"{host.base_url}/api/items/42/widget?colour=red&size=L"


def test_an_optional_route_parameter_may_be_left_out(host: FunctionsHost) -> None:
    response = get(host, "/api/items/7", params={"code": FUNCTION_KEY})

    assert response.json()["route_params"] == {"id": "7"}


def test_a_posted_body_reaches_the_function(host: FunctionsHost) -> None:
    response = requests.post(f"{host.base_url}/api/items/1", data=b"payload", timeout=TIMEOUT,
                             headers={"x-functions-key": FUNCTION_KEY})

    assert response.json()["method"] == "POST"
    assert response.json()["body"] == "payload"


def test_a_literal_route_wins_over_a_parameter(host: FunctionsHost) -> None:
    response = get(host, "/api/items/special", params={"code": FUNCTION_KEY})

    assert response.text == "the literal route wins"


def test_a_route_constraint_that_fails_means_no_route(host: FunctionsHost) -> None:
    assert get(host, "/api/items/not-a-number", params={"code": FUNCTION_KEY}).status_code == 404


def test_an_unknown_route_is_404(host: FunctionsHost) -> None:
    assert get(host, "/api/nothing-here").status_code == 404


def test_a_path_outside_the_route_prefix_is_404(host: FunctionsHost) -> None:
    assert get(host, "/whoami").status_code == 404


def test_a_method_the_function_does_not_take_is_405(host: FunctionsHost) -> None:
    response = requests.delete(f"{host.base_url}/api/items/1", timeout=TIMEOUT,
                               headers={"x-functions-key": FUNCTION_KEY})

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


def test_a_function_level_route_without_a_key_is_401(host: FunctionsHost) -> None:
    assert get(host, "/api/items/1").status_code == 401


def test_a_function_level_route_with_a_wrong_key_is_401(host: FunctionsHost) -> None:
    assert get(host, "/api/items/1", headers={"x-functions-key": "guess"}).status_code == 401


def test_the_master_key_also_opens_a_function_level_route(host: FunctionsHost) -> None:
    assert get(host, "/api/items/1", headers={"x-functions-key": MASTER_KEY}).status_code == 200


def test_an_admin_level_route_refuses_a_function_key(host: FunctionsHost) -> None:
    assert get(host, "/api/admin/ping", headers={"x-functions-key": FUNCTION_KEY}).status_code == 401


def test_an_admin_level_route_takes_the_master_key(host: FunctionsHost) -> None:
    assert get(host, "/api/admin/ping", params={"code": MASTER_KEY}).text == "pong"


def test_the_host_exposes_its_function_key(host: FunctionsHost) -> None:
    assert host.function_key == FUNCTION_KEY


def test_a_generated_function_key_opens_function_routes() -> None:
    with running_host({"SAMPLE_SERVICEBUS": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v"}) \
            as generated:
        assert len(generated.function_key) >= 32
        assert get(generated, "/api/items/1", params={"code": generated.function_key}).status_code == 200


def test_status_headers_and_every_set_cookie_come_back(host: FunctionsHost) -> None:
    response = get(host, "/api/cookies")

    assert response.status_code == 201
    assert response.headers["X-Sample"] == "yes"
    assert response.raw.headers.getlist("Set-Cookie") == ["first=1; Path=/", "second=2; Path=/"]
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_an_exception_in_the_function_is_a_bare_500(host: FunctionsHost) -> None:
    response = get(host, "/api/boom")

    assert response.status_code == 500
    assert "ValueError" not in response.text


def test_the_function_gets_an_invocation_context(host: FunctionsHost) -> None:
    assert len(get(host, "/api/whoami").json()["invocation_id"]) == 36


def test_a_coroutine_function_is_awaited(host: FunctionsHost) -> None:
    assert get(host, "/api/setting", params={"name": "SAMPLE_INPUT_QUEUE"}).json()["value"] == "inbox"


def test_local_settings_are_in_the_environment_before_the_app_is_imported(host: FunctionsHost) -> None:
    assert get(host, "/api/setting").json()["import_time"] == "read before import"


def test_explicit_settings_override_local_settings(host: FunctionsHost) -> None:
    response = get(host, "/api/setting", params={"name": "SAMPLE_OVERRIDDEN"})

    assert response.json()["value"] == "from the host's settings"


def test_forged_identity_headers_never_reach_a_function(host: FunctionsHost) -> None:
    forged = {"X-MS-CLIENT-PRINCIPAL": "eyJjbGFpbXMiOltdfQ==", "X-MS-CLIENT-PRINCIPAL-ID": "forged",
              "X-MS-CLIENT-PRINCIPAL-NAME": "admin@contoso.test", "X-MS-TOKEN-AAD-ACCESS-TOKEN": "forged"}

    seen = get(host, "/api/whoami", headers=forged).json()

    assert not [name for name in seen if name.startswith("x-ms-")]


def test_one_log_line_is_written_per_invocation(host: FunctionsHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="local_azure.host")

    get(host, "/api/boom")

    [line] = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Executed")]
    assert line.startswith("Executed 'Functions.boom' (Failed, ValueError, Id=")
    assert "trigger=httpTrigger" in line
    assert "Duration=" in line


def test_a_malformed_request_gets_an_http_error_not_a_traceback(host: FunctionsHost) -> None:
    import socket
    with socket.create_connection(("127.0.0.1", host.port), timeout=TIMEOUT) as connection:
        connection.sendall(b"GET /api/whoami HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        reply = connection.recv(4096)

    assert reply.startswith(b"HTTP/1.1 400")


def test_settings_are_restored_when_the_host_stops() -> None:
    import os
    with running_host({"SAMPLE_SERVICEBUS": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v",
                       "SAMPLE_ONLY_WHILE_RUNNING": "yes"}):
        assert os.environ["SAMPLE_ONLY_WHILE_RUNNING"] == "yes"

    assert "SAMPLE_ONLY_WHILE_RUNNING" not in os.environ


def test_a_burst_of_connections_is_taken_without_a_refusal_or_a_resend(host: FunctionsHost) -> None:
    # An action group in a storm opens many connections at once; a listen backlog of socketserver's 5
    # drops the rest, and each dropped client waits out a TCP resend (a second or more) or is reset.
    burst = 64
    ready = threading.Barrier(burst)

    def connect(_: int) -> bool:
        ready.wait()
        try:
            with socket.create_connection(("127.0.0.1", host.port), timeout=BURST_CONNECT_SECONDS) as connection:
                connection.sendall(b"GET /api/items/1?code=" + FUNCTION_KEY.encode() + b" HTTP/1.1\r\n"
                                   b"Host: localhost\r\nConnection: close\r\n\r\n")
                connection.settimeout(TIMEOUT)
                return connection.recv(12).startswith(b"HTTP/1.")
        except OSError:
            return False

    with ThreadPoolExecutor(burst) as pool:
        answered = list(pool.map(connect, range(burst)))
    assert answered.count(True) == burst
