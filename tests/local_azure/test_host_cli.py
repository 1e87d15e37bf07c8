"""`python -m local_azure.host`: runs the app in the foreground until SIGTERM."""

from __future__ import annotations

import io
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from local_azure.host.__main__ import log_in_background
from tests.local_azure.sample_app.harness import APP_REFERENCE, SAMPLE_APP, SAMPLE_LOCAL_SETTINGS

pytestmark = pytest.mark.timeout(60)
PROJECT_ROOT = Path(__file__).parents[2]
STARTED = re.compile(r"HTTP on (http://127\.0\.0\.1:\d+)")
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING tests\.host\.log-format: alert a-1 accepted")


def test_the_cli_serves_the_app_and_stops_cleanly_on_sigterm() -> None:
    command = [sys.executable, "-m", "local_azure.host", "--project", str(SAMPLE_APP), "--app", APP_REFERENCE,
               "--port", "0", "--local-settings", str(SAMPLE_LOCAL_SETTINGS),
               "--setting", "SAMPLE_SERVICEBUS=Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
    try:
        base_url = None
        deadline = time.monotonic() + 30
        while base_url is None and time.monotonic() < deadline and process.stderr is not None:
            line = process.stderr.readline()
            if not line:
                break
            found = STARTED.search(line)
            base_url = found.group(1) if found else None
        assert base_url is not None, "the host never said where it listens"
        # Keep reading its log so a full pipe never blocks the host.
        threading.Thread(target=lambda: [None for _ in process.stderr or ()], daemon=True).start()

        assert requests.get(f"{base_url}/api/whoami", timeout=10).status_code == 200

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()


def written_by_the_host_log(logger_name: str, log: Callable[[logging.Logger], None]) -> str:
    """What the host's log writes for what `log` logs on a logger of that name."""
    stream = io.StringIO()
    handler, listener = log_in_background(stream)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        log(logger)
    finally:
        listener.stop()
        logger.removeHandler(handler)
    return stream.getvalue()


def test_each_log_line_says_when_how_bad_and_which_logger_once() -> None:
    written = written_by_the_host_log("tests.host.log-format",
                                      lambda logger: logger.warning("alert %s accepted", "a-1"))
    assert LOG_LINE.fullmatch(written.strip()), written


def _fail_and_log(logger: logging.Logger) -> None:
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        logger.exception("function failed")


def test_a_logged_exception_keeps_its_traceback() -> None:
    lines = written_by_the_host_log("tests.host.log-traceback", _fail_and_log).splitlines()
    assert lines[0].endswith(" ERROR tests.host.log-traceback: function failed")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: division by zero"


def test_a_host_whose_app_fails_to_start_writes_what_the_app_logged_before_it_exits(tmp_path: Path) -> None:
    (tmp_path / "failing_app.py").write_text(
        "import logging\n"
        "for n in range(3000):\n"  # more than the writer could drain as the process exits, unless it is waited for
        "    logging.getLogger('failing_app').warning('checked setting %d', n)\n"
        "logging.getLogger('failing_app').error('GATES_EXAMPLE is not set')\n"
        "raise RuntimeError('the app could not start')\n")
    command = [sys.executable, "-m", "local_azure.host", "--project", str(tmp_path), "--app", "failing_app:app",
               "--port", "0"]
    finished = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert finished.returncode != 0
    assert " ERROR failing_app: GATES_EXAMPLE is not set" in finished.stderr
