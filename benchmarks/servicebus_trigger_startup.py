"""The host's Service Bus triggers at start-up: seven queue triggers, maxConcurrentCalls 8 (the app's shape).

    .venv/bin/python benchmarks/servicebus_trigger_startup.py [--rounds 5]

Reports the receivers' reconnect warnings (each one a connection that failed to open) and, per round,
the time from sending one message to each of the seven queues until all seven functions ran; the
first round is sent the moment `host.start()` returns, so it includes the receivers connecting.

Measured on this machine, two runs each (7 triggers x maxConcurrentCalls 8):
  before (a connection per concurrent call, 56 at once; Proton's listen backlog 10):
    7 and 4 reconnect warnings; first round 3,115 and 1,474 ms; further rounds median 47 and 26 ms
  after (one receiver per function; backlog 512):
    0 and 0 reconnect warnings; first round 507 and 515 ms; further rounds median 35 and 30 ms
The ~0.5 s left in the first round is the SDK opening a receiver: its sync client handles one frame
per 50 ms sleep while it opens (open, begin, attaches, $cbs put-token), whatever the broker does.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from local_azure.host import FunctionsHost
from local_azure.servicebus import QueueSettings, ServiceBusStandIn

QUEUES = [f"busy-{index}" for index in range(7)]
APP = '''
import threading
import azure.functions as func

app = func.FunctionApp()
handled: dict[str, float] = {}
changed = threading.Condition()


def _record(msg: func.ServiceBusMessage) -> None:
    import time
    with changed:
        handled[msg.get_body().decode()] = time.perf_counter()
        changed.notify_all()

''' + "".join(f'''
@app.service_bus_queue_trigger(arg_name="msg", queue_name="{queue}", connection="BENCH_SERVICEBUS")
def handle_{index}(msg: func.ServiceBusMessage) -> None:
    _record(msg)
''' for index, queue in enumerate(QUEUES))


class Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reconnects = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "reconnecting" in record.getMessage():
            self.reconnects += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    counter = Counter()
    logging.getLogger("local_azure.host").addHandler(counter)

    with tempfile.TemporaryDirectory() as project, \
            ServiceBusStandIn([QueueSettings(name) for name in QUEUES]) as stand_in:
        (Path(project) / "host.json").write_text(
            '{"version": "2.0", "extensions": {"serviceBus": {"maxConcurrentCalls": 8}}}')
        (Path(project) / "bench_triggers_app.py").write_text(APP)
        host = FunctionsHost(Path(project), app="bench_triggers_app:app",
                             settings={"BENCH_SERVICEBUS": stand_in.connection_string})
        rounds: list[float] = []
        with ServiceBusClient.from_connection_string(stand_in.connection_string) as client:
            senders = {queue: client.get_queue_sender(queue) for queue in QUEUES}
            for sender in senders.values():
                sender.__enter__()  # open the links before timing
            started = time.perf_counter()
            host.start()
            print(f"host.start(): {(time.perf_counter() - started) * 1000:.0f} ms")
            app = sys.modules["bench_triggers_app"]
            # Round 0 is sent the moment the host has started: it waits for the receivers to connect.
            for round_index in range(args.rounds):
                bodies = {queue: f"{queue}/{round_index}" for queue in QUEUES}
                sent = time.perf_counter()
                for queue, sender in senders.items():
                    sender.send_messages(ServiceBusMessage(bodies[queue]))
                expected = set(bodies.values())
                with app.changed:
                    app.changed.wait_for(lambda expected=expected: expected <= app.handled.keys(), timeout=30)
                rounds.append(max(app.handled.get(body, float("inf")) for body in bodies.values()) - sent)
            for sender in senders.values():
                sender.close()
        stop = threading.Thread(target=host.stop)
        stop.start()
        stop.join(30)

    print(f"reconnect warnings from the receivers: {counter.reconnects}")
    print(f"first round, sent as host.start() returned: {rounds[0] * 1000:.0f} ms until all seven functions ran")
    ms = sorted(value * 1000 for value in rounds[1:])
    if ms:
        print(f"{len(ms)} further rounds, 7 queues each, send until all seven functions ran: "
              f"median {statistics.median(ms):.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms")


if __name__ == "__main__":
    main()
