"""Actions on Azure Resource Manager through `azure-core`: its pipeline (bearer token, retries with
`Retry-After`, request ids, redacted logging) and ARM's long-running-operation polling (`azure-mgmt-core`'s
`ARMPolling`, which follows `Azure-AsyncOperation` first, as the generated management SDKs do)."""

from __future__ import annotations

import json
from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    RequestIdPolicy,
    RetryPolicy,
    UserAgentPolicy,
)
from azure.core.polling import LROPoller
from azure.core.rest import HttpRequest
from azure.mgmt.core.polling.arm_polling import ARMPolling

from shared.core.arm_outcomes import ArmOutcome, OutcomeKind, classify
from shared.core.catalog import ActionSpec

ARM_SCOPE = "https://management.azure.com/.default"
USER_AGENT = "sre-gates/0.1"


class ArmResourceManager:
    def __init__(self, endpoint: str, *, retry_total: int = 4, polling_interval: float = 2.0,
                 operation_timeout: float = 240.0) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._retry_total = retry_total
        self._polling_interval = polling_interval
        self._operation_timeout = operation_timeout

    def _client(self, credential: TokenCredential) -> PipelineClient[Any, Any]:
        # A client per credential: a delegated credential must never be cached in a shared pipeline.
        policies = [
            RequestIdPolicy(),
            HeadersPolicy(),
            UserAgentPolicy(base_user_agent=USER_AGENT),
            RetryPolicy(retry_total=self._retry_total, retry_backoff_factor=0.5),
            BearerTokenCredentialPolicy(credential, ARM_SCOPE),
            HttpLoggingPolicy(),  # redacts Authorization and unknown headers
        ]
        return PipelineClient(base_url=self._endpoint, policies=policies)

    def perform(self, action: ActionSpec, resource_id: str, parameters: dict[str, Any],
                credential: TokenCredential) -> ArmOutcome:
        url = f"{self._endpoint}{resource_id}{action.path_suffix}"
        body = action.body(parameters)
        request = HttpRequest(action.method, url, params={"api-version": action.api_version},
                              json=body if body is not None else None,
                              headers={"Accept": "application/json"})
        if action.method == "POST" and body is None:
            request.headers["Content-Length"] = "0"
        with self._client(credential) as client:
            try:
                # The generated Azure SDKs run requests the same way, to get the PipelineResponse LRO polling needs.
                response = client._pipeline.run(request, stream=False)
            except AzureError as error:
                return ArmOutcome(OutcomeKind.FAILED, 0, "ServiceUnavailable", f"ARM could not be reached: {error}")
            http = response.http_response
            status = http.status_code
            # ARM answers some updates 200 with an operation still running (a scale-set PATCH: 200,
            # provisioningState Updating, Azure-AsyncOperation): follow the operation whenever one is named.
            if status in (201, 202) or (status == 200 and "Azure-AsyncOperation" in http.headers):
                return self._poll(client, response)
            return classify(status, dict(http.headers), _body(http))

    def _poll(self, client: PipelineClient[Any, Any], initial: PipelineResponse[Any, Any]) -> ArmOutcome:
        poller: LROPoller[Any] = LROPoller(
            client, initial, lambda pipeline_response: pipeline_response,
            ARMPolling(self._polling_interval, lro_options={"final-state-via": "azure-async-operation"}))
        try:
            final = poller.result(timeout=self._operation_timeout)
        except HttpResponseError as error:
            response = error.response
            if response is None:
                return ArmOutcome(OutcomeKind.FAILED, 0, "OperationFailed", str(error.message))
            status = int(response.status_code or 0)
            if 200 <= status < 300:  # the operation's own status said Failed or Canceled
                return _operation_failure(_json(_body(response)), "Failed")
            return classify(status, dict(getattr(response, "headers", {})), _body(response))
        except AzureError as error:
            return ArmOutcome(OutcomeKind.FAILED, 0, "OperationFailed", str(error))
        if not poller.done():
            return ArmOutcome(OutcomeKind.FAILED, 0, "OperationTimeout",
                              f"the operation was still running after {self._operation_timeout:.0f}s")
        body = _json(_body(final.http_response)) if final is not None else {}
        if poller.status().lower() in ("failed", "canceled", "cancelled") or isinstance(body.get("error"), dict):
            return _operation_failure(body, poller.status())
        return ArmOutcome(OutcomeKind.SUCCEEDED, 200, body=body or {"status": "Succeeded"})


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
