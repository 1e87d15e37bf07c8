"""A local certificate authority for the HTTPS stand-ins (Entra ID, ARM).

MSAL accepts only https authorities, and azure-core verifies certificates, so the stand-ins serve
TLS with a certificate from a CA made on first use. Clients trust it through a bundle that holds the
system's CAs plus the local one: point `REQUESTS_CA_BUNDLE` (which overrides a requests session's
`verify` on this machine) and `SSL_CERT_FILE` at `trust_bundle_path`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SYSTEM_BUNDLE_CANDIDATES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class ServerCertificate:
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


class LocalCertificateAuthority:
    """A CA kept in `state_dir`, created once and reused by every stand-in of the run."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.ca_cert_path = state_dir / "local-ca.pem"
        self._ca_key_path = state_dir / "local-ca.key"
        self.trust_bundle_path = state_dir / "trust-bundle.pem"

    @classmethod
    def ensure(cls, state_dir: Path) -> LocalCertificateAuthority:
        authority = cls(state_dir)
        if not (authority.ca_cert_path.exists() and authority._ca_key_path.exists()):
            authority._create()
        if not authority.trust_bundle_path.exists():
            authority._write_trust_bundle()
        return authority

    def issue_server_certificate(self, name: str = "localhost") -> ServerCertificate:
        cert_path = self.state_dir / f"{name}.pem"
        key_path = self.state_dir / f"{name}.key"
        if cert_path.exists() and key_path.exists():
            return ServerCertificate(cert_path, key_path)
        ca_key = serialization.load_pem_private_key(self._ca_key_path.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        alt_names: list[x509.GeneralName] = []
        for local_name in LOCAL_NAMES:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(local_name)))
            except ValueError:
                alt_names.append(x509.DNSName(local_name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        _write_private(key_path, key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return ServerCertificate(cert_path, key_path)

    def client_environment(self) -> dict[str, str]:
        """The variables that make requests, azure-core, MSAL and urllib trust the stand-ins."""
        bundle = str(self.trust_bundle_path)
        return {"REQUESTS_CA_BUNDLE": bundle, "SSL_CERT_FILE": bundle, "CURL_CA_BUNDLE": bundle}

    def _create(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SRE Gates local stand-in CA")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_private(self._ca_key_path, key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))
        self.ca_cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        # Leaf certificates of an older CA would no longer verify.
        for stale in self.state_dir.glob("*.pem"):
            if stale not in (self.ca_cert_path,):
                stale.unlink()
        self._write_trust_bundle()

    def _write_trust_bundle(self) -> None:
        system = next((Path(p) for p in SYSTEM_BUNDLE_CANDIDATES if Path(p).exists()), None)
        parts = [system.read_text()] if system else []
        parts.append(self.ca_cert_path.read_text())
        self.trust_bundle_path.write_text("\n".join(parts))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
