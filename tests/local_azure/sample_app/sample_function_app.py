"""A function app of the host's own tests: one function per behaviour the host must drive.

Written exactly as the project's app is (v2 programming model, settings from the environment, sends
with azure-servicebus), so what the host does with it is what it will do with `function_app:app`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import List  # noqa: UP035  the worker's batch annotation check knows no list[...]

import azure.functions as func
from azure.servicebus import ServiceBusClient, ServiceBusMessage

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

# Timer firings, observed by the tests in the same process.
TICKS: list[func.TimerRequest] = []
TICKED = threading.Event()
IMPORT_TIME_SETTING = os.environ.get("SAMPLE_IMPORT_TIME")


def _send(queue: str, document: dict[str, object]) -> None:
    with ServiceBusClient.from_connection_string(os.environ["SAMPLE_SERVICEBUS"]) as client, \
            client.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage(json.dumps(document), content_type="application/json"))


def _observed(msg: func.ServiceBusMessage) -> dict[str, object]:
    return {
        "body": msg.get_body().decode(),
        "message_id": msg.message_id,
        "correlation_id": msg.correlation_id,
        "content_type": msg.content_type,
        "delivery_count": msg.delivery_count,
        "subject": msg.subject,
        "label": msg.label,
        "application_properties": msg.application_properties,
        "user_properties": msg.user_properties,
        "has_lock_token": bool(msg.lock_token),
        "has_enqueued_time": msg.enqueued_time_utc is not None,
        "sequence_number": msg.sequence_number,
    }


@app.service_bus_queue_trigger(arg_name="msg", queue_name="%SAMPLE_INPUT_QUEUE%", connection="SAMPLE_SERVICEBUS")
def relay(msg: func.ServiceBusMessage) -> None:
    logging.info("relaying %s", msg.message_id)
    _send(os.environ["SAMPLE_OUTPUT_QUEUE"], _observed(msg))


@app.service_bus_queue_trigger(arg_name="msg", queue_name="flaky", connection="SAMPLE_SERVICEBUS")
def flaky(msg: func.ServiceBusMessage) -> None:
    """Reports every delivery, then fails until `succeed_on` deliveries have been made."""
    _send(os.environ["SAMPLE_OUTPUT_QUEUE"], _observed(msg))
    succeed_on = int(json.loads(msg.get_body())["succeed_on"])
    if msg.delivery_count < succeed_on:
        raise RuntimeError(f"failing delivery {msg.delivery_count} on purpose")


@app.service_bus_queue_trigger(arg_name="msgs", queue_name="batched", connection="SAMPLE_SERVICEBUS",
                               cardinality=func.Cardinality.MANY)
def batched(msgs: List[func.ServiceBusMessage]) -> None:  # noqa: UP006  the worker accepts only typing.List
    """Reports each batch it is given (the bodies, the delivery counts); fails a batch holding "fail"."""
    _send(os.environ["SAMPLE_OUTPUT_QUEUE"], {"bodies": sorted(m.get_body().decode() for m in msgs),
                                              "delivery_counts": sorted(m.delivery_count for m in msgs)})
    if any(m.get_body() == b"fail" for m in msgs):
        raise RuntimeError("failing the batch on purpose")


# Two invocations must be inside the function at once to pass: proof of maxConcurrentCalls.
PAIRED = threading.Barrier(2, timeout=10)


@app.service_bus_queue_trigger(arg_name="msg", queue_name="paired", connection="SAMPLE_SERVICEBUS")
def paired(msg: func.ServiceBusMessage) -> None:
    PAIRED.wait()
    _send(os.environ["SAMPLE_OUTPUT_QUEUE"], _observed(msg))


@app.service_bus_queue_trigger(arg_name="msg", queue_name="slow", connection="SAMPLE_SERVICEBUS")
def slow(msg: func.ServiceBusMessage) -> None:
    """Outlives the queue's lock duration; lock renewal must keep the message from being redelivered."""
    time.sleep(float(json.loads(msg.get_body())["seconds"]))
    _send(os.environ["SAMPLE_OUTPUT_QUEUE"], _observed(msg))


@app.service_bus_queue_trigger(arg_name="msg", queue_name="via-output", connection="SAMPLE_SERVICEBUS")
@app.service_bus_queue_output(arg_name="out", queue_name="%SAMPLE_OUTPUT_QUEUE%", connection="SAMPLE_SERVICEBUS")
def via_output_binding(msg: func.ServiceBusMessage, out: func.Out[str]) -> None:
    out.set(json.dumps({"body": msg.get_body().decode(), "via": "output binding"}))


@app.route(route="items/{id:int}/{name?}", methods=["GET", "POST"])
def items(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({
        "method": req.method,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "body": req.get_body().decode(),
        "url": req.url,
    }), mimetype="application/json")


@app.route(route="items/special", methods=["GET"])
def special_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("the literal route wins")


@app.route(route="whoami", auth_level=func.AuthLevel.ANONYMOUS)
def whoami(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    identity = {name: value for name, value in req.headers.items() if name.startswith(("x-ms-", "authorization"))}
    identity["invocation_id"] = context.invocation_id
    return func.HttpResponse(json.dumps(identity), mimetype="application/json")


@app.route(route="admin/ping", auth_level=func.AuthLevel.ADMIN)
def admin_ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")


@app.route(route="cookies", auth_level=func.AuthLevel.ANONYMOUS)
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse("two cookies", status_code=201, headers={"X-Sample": "yes"})
    response.headers.add_header("Set-Cookie", "first=1; Path=/")
    response.headers.add_header("Set-Cookie", "second=2; Path=/")
    return response


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("the function fails")


@app.route(route="setting", auth_level=func.AuthLevel.ANONYMOUS)
async def setting(req: func.HttpRequest) -> func.HttpResponse:
    name = req.params.get("name", "")
    return func.HttpResponse(json.dumps({"value": os.environ.get(name), "import_time": IMPORT_TIME_SETTING}),
                             mimetype="application/json")


@app.timer_trigger(schedule="%SAMPLE_TICK_SCHEDULE%", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    TICKS.append(timer)
    TICKED.set()
