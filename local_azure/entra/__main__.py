"""`python -m local_azure.entra --port 8443 --state-dir .local/entra`: serve until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from local_azure.entra.server import EntraStandIn
from local_azure.tls import LocalCertificateAuthority


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_azure.entra", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--state-dir", type=Path, default=Path(".local/entra"), help="signing key lives here")
    parser.add_argument("--tls-dir", type=Path, default=Path(".local/tls"),
                        help="the local CA shared by the HTTPS stand-ins")
    parser.add_argument("--fixture", type=Path, default=None, help="directory fixture (default: fixtures/entra.json)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    authority = LocalCertificateAuthority.ensure(args.tls_dir)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with EntraStandIn(args.fixture, state_dir=args.state_dir, host=args.host, port=args.port,
                      certificate_authority=authority) as entra:
        print(f"Entra ID stand-in: authority {entra.authority}", flush=True)
        print(f"  issuer   {entra.issuer}\n  jwks     {entra.jwks_uri}", flush=True)
        bundle = authority.trust_bundle_path
        print(f"  trust    REQUESTS_CA_BUNDLE={bundle} SSL_CERT_FILE={bundle}", flush=True)
        try:
            while not stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
