"""Actions on Azure Resource Manager through `azure-core`: its pipeline (bearer token, retries with
`Retry-After`, request ids, redacted logging) and ARM's long-running-operation polling (`azure-mgmt-core`'s
`ARMPolling`, which follows `Azure-AsyncOperation` first, as the generated management SDKs do)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.pipeline import PipelineContext, PipelineResponse
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    RequestIdPolicy,
    RetryPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest
from azure.core.utils import CaseInsensitiveDict
from azure.mgmt.core.polling.arm_polling import ARMPolling

from shared.adapters.http_session import transport
from shared.core.arm_outcomes import ArmOutcome, OutcomeKind, classify
from shared.core.catalog import ActionSpec
from shared.core.model import ArmOperation

ARM_SCOPE = "https://management.azure.com/.default"
USER_AGENT = "sre-gates/0.1"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class WriteSafeRetryPolicy(RetryPolicy):  # type: ignore[type-arg]  # generic only in newer azure-core stubs
    """azure-core retries POST and PATCH on 500/503/504, and anything with Retry-After; for a write that
    can run an action twice. A write is retried only when ARM certainly did nothing: 429 (throttled
    before the provider saw it) or a connection that never carried the request."""

    def __init__(self, may_retry: Callable[[], bool] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._may_retry = may_retry
        self.held = False  # a write's retry refused by `may_retry` (the kill switch thrown since it was sent)

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        if response.http_request.method.upper() in SAFE_METHODS:
            return bool(super().is_retry(settings, response))
        if response.http_response.status_code != 429 or not super().is_retry(settings, response):
            return False
        # Sending a write again is a new ARM call: it starts only if the kill switch still lets it.
        if self._may_retry is not None and not self._may_retry():
            self.held = True
            return False
        return True


class ArmResourceManager:
    def __init__(self, endpoint: str, *, retry_total: int = 4, polling_interval: float = 2.0) -> None:
        # How long an operation is followed is bounded by the function's timeout (host.json), not here.
        self._endpoint = endpoint.rstrip("/")
        self._retry_total = retry_total
        self._polling_interval = polling_interval
        # Connections (and their TLS handshakes) are reused across calls; credentials are not. A call's
        # pipeline is therefore never closed: closing it would close the shared transport.
        self._transport = transport()
        self._transport.open()

    def _client(self, credential: TokenCredential,
                may_retry: Callable[[], bool] | None = None) -> tuple[PipelineClient[Any, Any], WriteSafeRetryPolicy]:
        # A pipeline per credential: a delegated credential must never be cached in a shared pipeline.
        # Only the transport, which holds no credential, is shared.
        # retry_read=0: a request sent whose answer was lost may have acted; never send it again.
        retry = WriteSafeRetryPolicy(may_retry, retry_total=self._retry_total, retry_backoff_factor=0.5, retry_read=0)
        policies = [
            RequestIdPolicy(),
            HeadersPolicy(),
            UserAgentPolicy(base_user_agent=USER_AGENT),
            retry,
            BearerTokenCredentialPolicy(credential, ARM_SCOPE),
            HttpLoggingPolicy(),  # redacts Authorization and unknown headers
        ]
        return PipelineClient(base_url=self._endpoint, policies=policies, transport=self._transport), retry

    def perform(self, action: ActionSpec, resource_id: str, parameters: dict[str, Any],
                credential: TokenCredential, *, client_request_id: str | None = None,
                on_accepted: Callable[[ArmOperation], None] | None = None,
                may_retry: Callable[[], bool] | None = None) -> ArmOutcome:
        """Send the action; if ARM accepts it as an operation, hand `on_accepted` where to follow it
        (before following it, so a host that dies while following leaves it behind), then follow it.

        `client_request_id` goes out as x-ms-client-request-id (through azure-core's RequestIdPolicy)
        and as x-ms-correlation-request-id, which ARM keeps when a client sends one: the activity log
        then finds the request by the id the run recorded, even when no answer came back."""
        url = f"{self._endpoint}{action.request_path(resource_id, parameters)}"
        body = action.body(parameters)
        query = action.query(resource_id, parameters, dt.datetime.now(dt.UTC))
        request = HttpRequest(action.method, url, params=query,
                              json=body if body is not None else None,
                              headers={"Accept": "application/json"})
        if action.method == "POST" and body is None:
            request.headers["Content-Length"] = "0"
        options: dict[str, Any] = {}
        if client_request_id:
            request.headers["x-ms-correlation-request-id"] = client_request_id
            options["request_id"] = client_request_id
        client, retry = self._client(credential, may_retry)
        try:
            # The generated Azure SDKs run requests the same way, to get the PipelineResponse LRO polling needs.
            response = client._pipeline.run(request, stream=False, **options)
        except AzureError as error:
            return ArmOutcome(OutcomeKind.FAILED, 0, "ServiceUnavailable", f"ARM could not be reached: {error}")
        http = response.http_response
        status = http.status_code
        if retry.held:
            return ArmOutcome(OutcomeKind.NOT_SENT, status, "KillSwitchThrown",
                              "ARM throttled the write (nothing done) and the kill switch was thrown before it "
                              "could be sent again")
        # ARM answers some updates 200 with an operation still running (a scale-set PATCH: 200,
        # provisioningState Updating, Azure-AsyncOperation): follow the operation whenever one is named.
        if status in (201, 202) or (status == 200 and "Azure-AsyncOperation" in http.headers):
            if on_accepted is not None:
                on_accepted(accepted_operation(request, http))
            return self._poll(client, response)
        return classify(status, dict(http.headers), _body(http))

    def resume(self, operation: ArmOperation, credential: TokenCredential) -> ArmOutcome:
        """Follow an operation ARM accepted earlier (its first answer went to a host that died).

        ARMPolling starts from a stand-in for that first answer, rebuilt from what the run recorded, as
        azure-core itself rebuilds one from a continuation token; from there it polls ARM as usual."""
        request = HttpRequest(operation.method, operation.url,
                              headers={"x-ms-client-request-id": operation.client_request_id})
        headers = {name: value for name, value in (("Azure-AsyncOperation", operation.async_operation),
                                                   ("Location", operation.location)) if value}
        client, _ = self._client(credential)
        initial = PipelineResponse(request, _RecordedAnswer(request, operation.status, headers),
                                   PipelineContext(client._pipeline._transport))
        return self._poll(client, initial)

    def _poll(self, client: PipelineClient[Any, Any], initial: PipelineResponse[Any, Any]) -> ArmOutcome:
        """Follow an operation ARM accepted, on this thread (no poller thread outlives the credential).

        Once ARM has accepted a write, nothing that happens while following it may lead to running it
        again: a failure here is a failure with an unknown outcome, never a security challenge."""
        polling = ARMPolling(self._polling_interval, lro_options={"final-state-via": "azure-async-operation"})
        polling.initialize(client, initial, lambda pipeline_response: pipeline_response)
        try:
            polling.run()
        except HttpResponseError as error:
            response = error.response
            status = int(response.status_code or 0) if response is not None else 0
            body = _json(_body(response)) if response is not None else {}
            if 200 <= status < 300:  # the operation's own status said Failed or Canceled
                return _operation_failure(body, "Failed")
            return ArmOutcome(OutcomeKind.FAILED, status, "OperationOutcomeUnknown",
                              f"ARM accepted the action, but following it failed ({status}): outcome unknown",
                              body=body or None)
        except AzureError as error:
            return ArmOutcome(OutcomeKind.FAILED, 0, "OperationOutcomeUnknown",
                              f"ARM accepted the action, but following it failed: {error.__class__.__name__}")
        final = polling.resource()
        body = _json(_body(final.http_response)) if final is not None else {}
        if polling.status().lower() in ("failed", "canceled", "cancelled") or isinstance(body.get("error"), dict):
            return _operation_failure(body, polling.status())
        return ArmOutcome(OutcomeKind.SUCCEEDED, 200, body=body or {"status": "Succeeded"})


class _RecordedAnswer:
    """ARM's first answer to an accepted write, as recorded in the run: just what polling reads (status,
    headers, request; no body, which ARM's 202 does not have and polling does not need)."""

    def __init__(self, request: HttpRequest, status_code: int, headers: dict[str, str]) -> None:
        self.request = request
        self.status_code = status_code
        self.headers = CaseInsensitiveDict(headers)
        self.content = b""

    def text(self, encoding: str | None = None) -> str:
        return ""

    def read(self) -> bytes:
        return self.content


def accepted_operation(request: HttpRequest, response: Any) -> ArmOperation:
    headers = response.headers
    return ArmOperation(method=request.method, url=request.url, status=int(response.status_code),
                        async_operation=headers.get("Azure-AsyncOperation"), location=headers.get("Location"),
                        request_id=headers.get("x-ms-request-id", ""),
                        client_request_id=request.headers.get("x-ms-client-request-id", ""),
                        correlation_id=headers.get("x-ms-correlation-request-id", ""))


def _operation_failure(body: dict[str, Any], status: str) -> ArmOutcome:
    found = body.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    return ArmOutcome(OutcomeKind.FAILED, 200, str(error.get("code", "OperationFailed")),
                      str(error.get("message", f"the operation ended {status}")), body=body)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _body(response: Any) -> bytes:
    """The body of either kind of azure-core response (rest or legacy transport)."""
    read = getattr(response, "read", None)
    if callable(read):
        return bytes(read() or b"")
    return bytes(response.body() or b"")
