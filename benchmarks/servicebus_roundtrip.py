"""Send, peek-lock receive and complete through the Service Bus stand-in with the real SDK.

    .venv/bin/python benchmarks/servicebus_roundtrip.py [--messages 200]

Links are opened once and reused, as an app or the Functions host does; the figure is the latency of
one message's round trip (send + receive + complete), not of link setup.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from local_azure.servicebus import QueueSettings, ServiceBusStandIn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()

    latencies: list[float] = []
    with ServiceBusStandIn([QueueSettings("bench")]) as stand_in, \
            ServiceBusClient.from_connection_string(stand_in.connection_string) as client, \
            client.get_queue_sender("bench") as sender, \
            client.get_queue_receiver("bench", prefetch_count=0) as receiver:
        opened = time.perf_counter()
        sender.send_messages(ServiceBusMessage("warm-up"))
        for message in receiver.receive_messages(max_wait_time=5):
            receiver.complete_message(message)
        print(f"warm-up round trip (opens the links): {(time.perf_counter() - opened) * 1000:.1f} ms")
        for index in range(args.messages):
            started = time.perf_counter()
            sender.send_messages(ServiceBusMessage(f"message {index}", message_id=str(index)))
            [message] = receiver.receive_messages(max_message_count=1, max_wait_time=5)
            receiver.complete_message(message)
            latencies.append(time.perf_counter() - started)
        assert stand_in.queue_depth("bench") == 0

    ms = sorted(latency * 1000 for latency in latencies)
    print(f"{len(ms)} messages: send + receive + complete")
    print(f"  median {statistics.median(ms):.2f} ms, p90 {ms[int(len(ms) * 0.9) - 1]:.2f} ms, "
          f"min {ms[0]:.2f} ms, max {ms[-1]:.2f} ms")


if __name__ == "__main__":
    main()
