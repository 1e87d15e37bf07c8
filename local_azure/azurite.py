"""Azurite, Microsoft's Table Storage emulator from npm, installed into the project and run as a child.

`npm ci --prefix local_azure/node` installs the version pinned in `local_azure/node/package-lock.json`;
`ensure_installed()` does that when the table service is missing. Only the table service runs, on
127.0.0.1, in its own process group and with a parent-death signal (see `processes`), so nothing is
left running when the test run or `python -m local_azure up` ends, however it ends.

    with AzuriteTables() as azurite:
        TableServiceClient.from_connection_string(azurite.connection_string)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from local_azure.lifecycle import Startable
from local_azure.processes import ManagedProcess, ProcessFailed, wait_for_port

NODE_DIR = Path(__file__).resolve().parent / "node"
AZURITE_PACKAGE = NODE_DIR / "node_modules" / "azurite"
AZURITE_TABLE_MAIN = AZURITE_PACKAGE / "dist" / "src" / "table" / "main.js"
INSTALL_TIMEOUT_SECONDS = 600
START_TIMEOUT_SECONDS = 30.0

# Azurite's well-known development account (documented by Microsoft; the same in every Azurite).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteNotInstalled(RuntimeError):
    pass


def locked_version() -> str:
    """The Azurite version `package-lock.json` pins."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"]["node_modules/azurite"]["version"])


def installed_version() -> str | None:
    try:
        return str(json.loads((AZURITE_PACKAGE / "package.json").read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return None


def is_installed() -> bool:
    """The table service is there, in the version the lock file pins (a changed pin means a new install)."""
    return AZURITE_TABLE_MAIN.is_file() and installed_version() == locked_version()


def ensure_installed() -> Path:
    """The table service's entry point, running `npm ci` into `local_azure/node` first if it is missing."""
    if is_installed():
        return AZURITE_TABLE_MAIN
    npm = shutil.which("npm")
    if npm is None:
        raise AzuriteNotInstalled(
            "Azurite (the Table Storage emulator) is not installed and npm is not on PATH. Install Node.js 18+ "
            "with npm, then run `npm ci --prefix local_azure/node`.")
    # Test runs in parallel may all find Azurite missing; one installs, the others wait and reuse it.
    # The lock lives outside the project (npm ci replaces node_modules; git should not see it).
    project_key = hashlib.sha256(bytes(NODE_DIR)).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"sre-gates-azurite-{project_key}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_installed():
            _npm_ci(npm)
    return AZURITE_TABLE_MAIN


def _npm_ci(npm: str) -> None:
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv
            [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
            capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired as error:
        raise AzuriteNotInstalled(f"`npm ci --prefix {NODE_DIR}` took over {INSTALL_TIMEOUT_SECONDS} s") from error
    if result.returncode != 0 or not is_installed():
        raise AzuriteNotInstalled(
            f"`npm ci --prefix {NODE_DIR}` failed (exit {result.returncode}):\n{result.stderr[-4000:]}")


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise AzuriteNotInstalled("Azurite needs Node.js: `node` is not on PATH")
    return node


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint=http://{host}:{port}/{ACCOUNT_NAME};")


class AzuriteTables(Startable):
    """Azurite's table service on 127.0.0.1.

    `port=0` lets Azurite bind any free port (read back from `.port`, found through /proc, so parallel
    runs never race for one). `in_memory=True` keeps nothing on disk; otherwise data lives in
    `data_dir` (a temporary folder, removed on `stop()`, when none is given).
    """

    def __init__(self, data_dir: Path | None = None, port: int = 0, in_memory: bool = True,
                 host: str = "127.0.0.1", debug_log: Path | None = None) -> None:
        self.host = host
        self.in_memory = in_memory
        self._requested_port = port
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._debug_log = debug_log
        self._temporary_dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: ManagedProcess | None = None
        self._port: int | None = None

    # ----- lifecycle ----------------------------------------------------------------------------
    def start(self) -> AzuriteTables:
        """Returns once the table service accepts connections."""
        if self._process is not None:
            raise RuntimeError("Azurite is already started")
        entry = ensure_installed()
        workdir = self._workdir()
        argv = [node_executable(), str(entry), "--tableHost", self.host, "--tablePort", str(self._requested_port),
                # The newest storage SDKs send an API version this Azurite does not know yet.
                "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl", "--disableTelemetry", "--silent"]
        # Azurite refuses --location together with --inMemoryPersistence; in memory it runs in `workdir`.
        argv += ["--inMemoryPersistence"] if self.in_memory else ["--location", str(workdir)]
        if self._debug_log is not None:
            argv += ["--debug", str(self._debug_log)]
        # Azurite closes cleanly (saving its data) on SIGINT only; SIGTERM ends it on the spot.
        process = ManagedProcess(argv, name="azurite-table", cwd=workdir, log_path=workdir / "azurite.log",
                                 stop_signal=signal.SIGINT)
        self._process = process.start()
        try:
            # Asking the process which port it holds, rather than connecting, also catches a fixed port
            # that something else already listens on.
            self._port = process.wait_for_listening_port(START_TIMEOUT_SECONDS)
            wait_for_port(self.host, self._port, START_TIMEOUT_SECONDS, process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop()
        self._port = None
        if self._temporary_dir is not None:
            with contextlib.suppress(OSError):
                self._temporary_dir.cleanup()
            self._temporary_dir = None

    # ----- addressing ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("Azurite is not started")
        return self._process.pid

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("Azurite is not started")
        return self._port

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, self.host)

    def log_tail(self) -> str:
        return self._process.log_tail() if self._process is not None else ""

    def _workdir(self) -> Path:
        if self._data_dir is not None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            return self._data_dir
        self._temporary_dir = tempfile.TemporaryDirectory(prefix="azurite-")
        return Path(self._temporary_dir.name)


def main(argv: list[str] | None = None) -> int:
    """`python -m local_azure.azurite [--port 10002] [--data-dir .local/azurite]`: Azurite's tables until Ctrl-C."""
    import argparse
    import time

    from local_azure.processes import exit_on_sigterm

    parser = argparse.ArgumentParser(prog="python -m local_azure.azurite", description="Azurite's table service")
    parser.add_argument("--port", type=int, default=10002, help="0 picks a free port")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep tables on disk here (default: in memory)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    with AzuriteTables(args.data_dir, port=args.port, in_memory=args.data_dir is None) as tables:
        print(f"Azurite table service on {tables.endpoint}\nTablesConnection={tables.connection_string}", flush=True)
        try:
            while tables.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
        print(f"Azurite exited:\n{tables.log_tail()}", flush=True)
        return 1


__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "AZURITE_TABLE_MAIN",
    "AzuriteNotInstalled",
    "AzuriteTables",
    "ProcessFailed",
    "connection_string",
    "ensure_installed",
]


if __name__ == "__main__":
    raise SystemExit(main())
