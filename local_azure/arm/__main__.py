"""`python -m local_azure.arm --port 8444 --jwks-uri https://127.0.0.1:8443/<tenant>/discovery/v2.0/keys`"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from .server import ArmStandIn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_azure.arm", description="Azure Resource Manager stand-in")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8444)
    parser.add_argument("--state-dir", type=Path, default=Path(".local/arm"))
    parser.add_argument("--tls-dir", type=Path, default=None,
                        help="where the local CA lives (share it with the other HTTPS stand-ins); default: state dir")
    parser.add_argument("--fixture", type=Path, default=None, help="default: local_azure/fixtures/arm.json")
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks-uri", help="the token issuer's JWKS, fetched over https trusting the local CA")
    keys.add_argument("--jwks-file", type=Path, help="a JWKS (or one JWK) in a file")
    parser.add_argument("--issuer", action="append", dest="issuers",
                        help="a trusted token issuer (repeatable); default: any issuer whose keys verify")
    parser.add_argument("--operation-polls", type=int, default=2)
    parser.add_argument("--operation-seconds", type=float, default=None)
    parser.add_argument("--retry-after", type=int, default=0, help="Retry-After on long-running operations")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stand_in = ArmStandIn(
        args.fixture, state_dir=args.state_dir, tls_dir=args.tls_dir, host=args.host, port=args.port,
        jwks=json.loads(args.jwks_file.read_text()) if args.jwks_file else None, jwks_uri=args.jwks_uri,
        issuers=args.issuers, operation_polls=args.operation_polls, operation_seconds=args.operation_seconds,
        operation_retry_after=args.retry_after,
    ).start()

    def stop(signum: int, frame: FrameType | None) -> None:
        stand_in.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ARM stand-in on {stand_in.endpoint}; trust {stand_in.authority.trust_bundle_path}", flush=True)
    stand_in.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
