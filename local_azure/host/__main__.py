"""`python -m local_azure.host --project . --port 7071`: run the app in the foreground until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import queue
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TextIO

from local_azure.host.functions_host import FunctionsHost


def _settings(pairs: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator:
            raise SystemExit(f"--setting takes NAME=VALUE, not {pair!r}")
        parsed[name] = value
    return parsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_azure.host", description=__doc__)
    parser.add_argument("--project", type=Path, default=Path())
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--local-settings", type=Path, default=None,
                        help="local.settings.json (default: the project's, if present)")
    parser.add_argument("--auth-settings", type=Path, default=None,
                        help="authsettingsV2 properties, e.g. local_azure/config/authsettings.json")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE")
    arguments = parser.parse_args(argv)
    handler, listener = log_in_background(sys.stderr)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    local_settings = arguments.local_settings
    if local_settings is None and (arguments.project / "local.settings.json").exists():
        local_settings = arguments.project / "local.settings.json"
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        host = FunctionsHost(arguments.project, app=arguments.app, settings=_settings(arguments.setting),
                             local_settings=local_settings, port=arguments.port,
                             auth_settings=arguments.auth_settings)
        with host:
            if host._http is not None:
                print(f"function key: {host.function_key}", file=sys.stderr, flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        listener.stop()  # what was logged is written, a failed start-up's reasons too
    return 0


def log_in_background(stream: TextIO) -> tuple[logging.Handler, logging.handlers.QueueListener]:
    """A handler that queues records, and the started listener that writes them to `stream` from a thread of
    its own, as the Python worker hands a function's logs to the Functions host: a function's thread never
    waits on the log's I/O, nor on another thread that holds the handler's lock while it waits for the GIL."""
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = logging.StreamHandler(stream)
    writer.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    listener = logging.handlers.QueueListener(records, writer)
    queued = logging.handlers.QueueHandler(records)
    queued.setFormatter(logging.Formatter("%(message)s"))  # the message and its traceback; the writer adds the rest
    listener.start()
    return queued, listener


if __name__ == "__main__":
    raise SystemExit(main())
