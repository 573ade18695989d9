"""What the answer media carries so a new guest serves WinRM the way the host expects.

When ``remote.channels`` lists ``winrm``, the media's ``vmforge/`` folder gets
``winrm-listener.ps1`` (rendered from templates/guest/windows/), which the bootstrap runs
once; for HTTPS also the VM's certificate and key as a password-protected PKCS#12 file and that
password in a file of its own.  The guest imports the certificate into LocalMachine\\My and
binds the HTTPS listener to it; the host pins the certificate's fingerprint here, before the
guest ever answers.

The PFX and its password are secrets of the VM (0600 ``secrets.json``): PKCS#12 encryption
uses random salts, so the bundle is made once and reused, which keeps the media's input hash
stable until the certificate changes (:func:`rotate_winrm_certificate`).  The password travels
only inside the media (a file the listener script reads): never on a command line, in a log or
in domain XML.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from vmforge.guest.certs import CertificatePair, fingerprint_der, generate_certificate, pfx_bundle
from vmforge.guest.os_windows import render_script
from vmforge.guest.remote_access import (
    PIN_WINRM,
    SECRET_WINRM_CERT,
    SECRET_WINRM_KEY,
    set_pin,
    winrm_certificate,
)
from vmforge.logs import register_secret
from vmforge.spec import RemoteChannel, RemoteSection, Spec, WinrmAuth, WinrmScheme
from vmforge.state import VmDir, generate_password

LISTENER_SCRIPT = "winrm-listener.ps1"
PFX_FILE = "winrm.pfx"
PFX_PASSWORD_FILE = "winrm-pfx.txt"  # noqa: S105 - a file name
SECRET_PFX = "winrm_cert_pfx"  # noqa: S105 - names of entries in secrets.json
SECRET_PFX_PASSWORD = "winrm_pfx_password"  # noqa: S105


@dataclass(frozen=True)
class PfxBundle:
    data: bytes
    password: str
    fingerprint: str  # SHA-256 of the certificate inside


def _pfx_fingerprint(data: bytes, password: str) -> str | None:
    try:
        _key, cert, _extra = pkcs12.load_key_and_certificates(data, password.encode())
    except ValueError:
        return None
    return fingerprint_der(cert.public_bytes(Encoding.DER)) if cert is not None else None


def winrm_pfx(vmdir: VmDir, common_name: str) -> PfxBundle:
    """The VM's certificate and key as PKCS#12, made on first use and whenever the certificate
    in the secrets no longer matches the stored bundle."""
    pair = winrm_certificate(vmdir, common_name)
    values = vmdir.load_secrets()
    password = values.get(SECRET_PFX_PASSWORD) or generate_password(32)
    register_secret(password)
    stored = values.get(SECRET_PFX)
    data = base64.b64decode(stored) if stored else b""
    if not stored or _pfx_fingerprint(data, password) != pair.fingerprint:
        data = pfx_bundle(pair, password)
        values[SECRET_PFX] = base64.b64encode(data).decode("ascii")
        values[SECRET_PFX_PASSWORD] = password
        vmdir.save_secrets(values)
    return PfxBundle(data, password, pair.fingerprint)


def rotate_winrm_certificate(vmdir: VmDir, common_name: str) -> CertificatePair:
    """A new certificate (and key, and PFX password) for the VM, pinned at once.

    For media not yet installed: a running guest keeps presenting the old certificate, which
    the new pin then refuses until the guest has the new one."""
    pair = generate_certificate(common_name)
    values = vmdir.load_secrets()
    values[SECRET_WINRM_KEY] = pair.key_pem
    values[SECRET_WINRM_CERT] = pair.cert_pem
    values[SECRET_PFX_PASSWORD] = generate_password(32)
    values.pop(SECRET_PFX, None)
    vmdir.save_secrets(values)
    set_pin(vmdir, PIN_WINRM, pair.fingerprint)
    return pair


def wants_winrm(spec: Spec) -> bool:
    return RemoteChannel.WINRM in spec.remote.channels


def winrm_media_files(spec: Spec, vmdir: VmDir, common_name: str) -> dict[str, bytes]:
    """File name (inside the media's vmforge folder) -> contents; empty when the spec does not
    use WinRM.  For HTTPS the certificate on the media is pinned as it is written."""
    return listener_media_files(spec.remote, vmdir, common_name)


def listener_media_files(remote: RemoteSection, vmdir: VmDir, common_name: str) -> dict[str, bytes]:
    """:func:`winrm_media_files` for a ``[remote]`` section (clones made without a spec use the
    defaults)."""
    if RemoteChannel.WINRM not in remote.channels:
        return {}
    https = remote.winrm_scheme == WinrmScheme.HTTPS
    basic = remote.winrm_auth == WinrmAuth.BASIC
    script = render_script(
        LISTENER_SCRIPT.removesuffix(".ps1"),
        https=int(https),
        basic=int(basic),
        unencrypted=int(basic and not https),  # only HTTP + Basic needs it (the spec demanded allow_insecure)
        port=remote.winrm_port or (5986 if https else 5985),
        pfx_file=PFX_FILE,
        password_file=PFX_PASSWORD_FILE,
    )
    # Windows PowerShell reads BOM-less scripts in the ANSI code page: ASCII with CRLF.
    files = {LISTENER_SCRIPT: script.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")}
    if https:
        bundle = winrm_pfx(vmdir, common_name)
        set_pin(vmdir, PIN_WINRM, bundle.fingerprint)
        files[PFX_FILE] = bundle.data
        files[PFX_PASSWORD_FILE] = bundle.password.encode("ascii")
    return files
