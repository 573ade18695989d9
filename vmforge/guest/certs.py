"""The per-VM WinRM certificate: made by vmforge, imported by the guest, pinned by the host.

vmforge generates a self-signed certificate for each VM; its private key lives only in the VM's
0600 secrets (and, until post-install removes it, on the answer media).  The host never trusts
a certificate authority for WinRM: it compares the SHA-256 fingerprint of the certificate the
guest presents with the one recorded for the VM (pinning).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vmforge.guest.transport import GuestUnreachable

VALIDITY_DAYS = 3650


@dataclass(frozen=True)
class CertificatePair:
    cert_pem: str
    key_pem: str

    @property
    def fingerprint(self) -> str:
        return fingerprint_pem(self.cert_pem)


def fingerprint_der(der: bytes) -> str:
    """SHA-256 of a DER certificate, lower-case hex without separators."""
    return hashlib.sha256(der).hexdigest()


def fingerprint_pem(pem: str) -> str:
    return fingerprint_der(ssl.PEM_cert_to_DER_cert(pem))


def show_fingerprint(fingerprint: str) -> str:
    """``AB:CD:…`` as certificate tools print it."""
    return ":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)).upper()


def generate_certificate(common_name: str, *, now: _dt.datetime | None = None) -> CertificatePair:
    """A self-signed server certificate (ECDSA P-256) for ``common_name``; WinRM's HTTPS listener
    accepts it when the CN matches the listener's Hostname and it carries serverAuth."""
    now = now or _dt.datetime.now(_dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return CertificatePair(cert_pem, key_pem)


def fetch_certificate(host: str, port: int, timeout: float) -> bytes:
    """The DER certificate the server at host:port presents (no validation: for pinning only)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise GuestUnreachable(
            f"cannot read the TLS certificate of {host}:{port}: {exc}",
            hint="is the guest running with its WinRM HTTPS listener up?",
        ) from None
    if not der:
        raise GuestUnreachable(f"{host}:{port} presented no TLS certificate")
    return der


def pfx_bundle(pair: CertificatePair, password: str) -> bytes:
    """The certificate and key as a password-protected PKCS#12 file, the form Windows'
    Import-PfxCertificate takes (the guest's bootstrap imports it, then deletes the file)."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = serialization.load_pem_private_key(pair.key_pem.encode(), password=None)
    cert = x509.load_pem_x509_certificate(pair.cert_pem.encode())
    return pkcs12.serialize_key_and_certificates(
        b"vmforge-winrm",
        key,  # type: ignore[arg-type]
        cert,
        None,
        serialization.BestAvailableEncryption(password.encode()),
    )
