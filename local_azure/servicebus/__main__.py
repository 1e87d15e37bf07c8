"""`python -m local_azure.servicebus --config local_azure/config/servicebus.json --port 5672`: run in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from .endpoint import STANDARD_MAX_MESSAGE_BYTES
from .server import ServiceBusStandIn

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "servicebus.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_azure.servicebus", description=__doc__)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="emulator-style Config.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5672, help="0 picks a free port")
    parser.add_argument("--max-message-bytes", type=int, default=STANDARD_MAX_MESSAGE_BYTES,
                        help="the tier's message size limit: 262144 (256 KB, Standard; the default) or up to "
                             "104857600 (Premium)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    stand_in = ServiceBusStandIn(args.config, host=args.host, port=args.port,
                                 max_message_bytes=args.max_message_bytes)

    def stop(signum: int, frame: FrameType | None) -> None:
        stand_in.stop()

    signal.signal(signal.SIGTERM, stop)
    try:
        stand_in.start()
    except (OSError, TimeoutError) as error:
        print(f"Service Bus stand-in: {error}", file=sys.stderr)
        return 1
    print(f"Service Bus stand-in listening on {args.host}:{stand_in.port} "
          f"(queues: {', '.join(stand_in.queue_names)}; messages up to {stand_in.max_message_bytes} bytes)",
          flush=True)
    print(f"ServiceBusConnection={stand_in.connection_string}", flush=True)
    try:
        stand_in.wait()
    except KeyboardInterrupt:
        stand_in.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
