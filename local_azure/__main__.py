"""`python -m local_azure up`: the whole local stack in the foreground; Ctrl-C (or SIGTERM) stops it.

There is no `down`: the stack lives as long as this process, and its children die with it however it
ends. State (the local CA, signing keys, caught mail, persisted tables) lives under `.local/`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from local_azure.processes import exit_on_sigterm
from local_azure.servicebus.endpoint import STANDARD_MAX_MESSAGE_BYTES
from local_azure.smtp import CaughtMail, links_in
from local_azure.stack import AUTH_SETTINGS, PROJECT_DIR, SERVICE_BUS_CONFIG, LocalStack, StackPorts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_azure", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start every stand-in and the Functions host; Ctrl-C stops them")
    up.add_argument("--project", type=Path, default=PROJECT_DIR, help="the function app's folder")
    up.add_argument("--state-dir", type=Path, default=None, help="default: <project>/.local")
    up.add_argument("--any-ports", action="store_true",
                    help="free ports instead of 10002/5672/8443/8444/2525/7071 (for a second stack)")
    up.add_argument("--no-host", action="store_true", help="only the stand-ins (run the host yourself)")
    up.add_argument("--keep-tables", action="store_true",
                    help="persist Azurite's tables in <state-dir>/azurite (queues are always in memory)")
    up.add_argument("--arm-fixture", type=Path, default=None,
                    help="the ARM stand-in's resources, roles and resource types "
                         "(default: local_azure/fixtures/arm.json)")
    up.add_argument("--arm-operation-seconds", type=float, default=None,
                    help="a long-running ARM operation runs this long (default: it completes after a few polls)")
    up.add_argument("--arm-operation-polls", type=int, default=2,
                    help="polls a long-running ARM operation answers InProgress to (default 2)")
    up.add_argument("--servicebus-config", type=Path, default=SERVICE_BUS_CONFIG,
                    help="emulator-style Config.json of the queues (default: local_azure/config/servicebus.json)")
    up.add_argument("--max-message-bytes", type=int, default=STANDARD_MAX_MESSAGE_BYTES,
                    help="the Service Bus tier's message size limit, enforced by the stand-in and given to the app "
                         "as GATES_SERVICE_BUS_MAX_MESSAGE_BYTES (default 262144: 256 KB, Standard)")
    up.add_argument("--function-key", default=None,
                    help="the Functions host's function key (default: a new random one, printed)")
    up.add_argument("--verbose", action="store_true", help="the stand-ins' and the host's own logs")
    host = commands.add_parser("host", help="only the Functions host, against a stack started with `up --no-host` "
                                            "(stop and start it again as often as you like)")
    host.add_argument("--settings", type=Path, default=PROJECT_DIR / ".local" / "stack-settings.json",
                      help="the settings file `up` writes (default: <project>/.local/stack-settings.json)")
    host.add_argument("--project", type=Path, default=PROJECT_DIR, help="the function app's folder")
    host.add_argument("--port", type=int, default=None,
                      help="default: the port of GATES_PUBLIC_BASE_URL in the settings (the links in e-mails)")
    host.add_argument("--verbose", action="store_true", help="the host's own logs")
    demo = commands.add_parser("demo", help="bring the stack up on free ports, play the VM-restart story and "
                                            "the agent's MCP story end to end, print the audit timelines, stop; "
                                            "exit 0 when both held")
    demo.add_argument("--verbose", action="store_true", help="the stand-ins' and the host's own logs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    exit_on_sigterm()
    if args.command == "demo":
        return _demo()
    if args.command == "host":
        return _host(args.settings, args.project, args.port)
    stack = LocalStack(args.project, state_dir=args.state_dir, start_host=not args.no_host,
                       ports=StackPorts() if args.any_ports else StackPorts.standard(),
                       persist_tables=args.keep_tables, arm_fixture=args.arm_fixture,
                       arm_operation_polls=args.arm_operation_polls, arm_operation_seconds=args.arm_operation_seconds,
                       service_bus_config=args.servicebus_config,
                       max_message_bytes=args.max_message_bytes, function_key=args.function_key,
                       say=lambda line: print(line, flush=True))
    settings_file = stack.state_dir / "stack-settings.json"
    try:
        stack.start()
        settings_file.write_text(json.dumps(stack.settings(), indent=2) + "\n")
        settings_file.chmod(0o600)
        print(f"\nSRE Gates local stack up in {stack.startup_seconds:.2f} s "
              f"({', '.join(f'{name} {seconds:.2f} s' for name, seconds in stack.timings.items())})", flush=True)
        print(stack.summary(), flush=True)
        print(f"\nSettings also in {settings_file}. Ctrl-C stops the stack.", flush=True)
        if args.no_host:
            print(f"Start the host alone with: python -m local_azure host --settings {settings_file}", flush=True)
        print("E-mails are listed below as they arrive, with their links (the run id is the last part of a "
              "/api/runs/ link).", flush=True)
        _watch(stack)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    except SystemExit:
        print("\nstopping (SIGTERM)...", flush=True)
    except Exception as error:  # a readable last line, not a traceback, for a part that failed
        if args.verbose:
            logging.exception("the local stack failed")
        print(f"\nthe local stack stopped: {error}", file=sys.stderr, flush=True)
        if "in use" in str(error):
            print("another stack (or service) holds that port: stop it, or run with --any-ports", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        settings_file.unlink(missing_ok=True)
    print("stopped", flush=True)
    return 0


def _demo() -> int:
    from local_azure.demo import play, play_agent

    with tempfile.TemporaryDirectory(prefix="sre-gates-demo-") as state:
        stack = LocalStack(state_dir=Path(state), say=lambda line: print(line, flush=True))
        try:
            stack.start()
            print(f"local stack up in {stack.startup_seconds:.2f} s\n", flush=True)
            held = play(stack, say=lambda line: print(line, flush=True))
            print("\nthe story held: consent, elevation, one restart by alice, credential discarded" if held
                  else "\nTHE STORY DID NOT HOLD: see above", flush=True)
            print("\n--- an agent brings its own plan, through MCP ---\n", flush=True)
            agent_held = play_agent(stack, say=lambda line: print(line, flush=True))
            print("\nthe agent's story held: proposed through MCP, alice consented and granted, scaled to 4, read "
                  "back through get_run" if agent_held else "\nTHE AGENT'S STORY DID NOT HOLD: see above", flush=True)
        finally:
            stack.stop()
    return 0 if held and agent_held else 1


def _watch(stack: LocalStack) -> None:
    """Sleep until interrupted, printing each e-mail's links as it arrives; end if Azurite dies under us."""
    seen = 0
    while True:
        time.sleep(1.0)
        if stack.mail is not None:
            caught = stack.mail.caught()
            for mail in caught[seen:]:
                print(describe_mail(mail, stack.public_base_url), flush=True)
            seen = len(caught)
        if stack.azurite is not None and not stack.azurite.running:
            raise RuntimeError(f"Azurite exited unexpectedly:\n{stack.azurite.log_tail()}")


def describe_mail(mail: CaughtMail, base_url: str) -> str:
    """One arrived e-mail for the console: to whom, the subject, and its links whole (decoded)."""
    lines = [f"\ne-mail to {', '.join(mail.envelope_to)}: {mail.message['Subject']}"]
    lines += [f"  {link}" for link in links_in(mail.message, base_url)]
    if mail.path is not None:
        lines.append(f"  (saved as {mail.path})")
    return "\n".join(lines)


def _host(settings_file: Path, project: Path, port: int | None) -> int:
    """The Functions host alone, with the settings a running `up --no-host` wrote; Ctrl-C stops it."""
    from local_azure.host import FunctionsHost

    if not settings_file.exists():
        print(f"no settings at {settings_file}: start the stack first with `python -m local_azure up --no-host`",
              file=sys.stderr)
        return 1
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    chosen = port or urllib.parse.urlsplit(settings.get("GATES_PUBLIC_BASE_URL", "")).port or 7071
    host = FunctionsHost(project, settings=settings, port=chosen, auth_settings=AUTH_SETTINGS)
    try:
        with host:
            print(f"Functions host {host.base_url}/api  function key {host.function_key}", flush=True)
            print("Ctrl-C stops it; the stack keeps running.", flush=True)
            while True:
                time.sleep(1.0)
    except (KeyboardInterrupt, SystemExit):
        print("\nhost stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
