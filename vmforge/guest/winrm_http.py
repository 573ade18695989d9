"""pywinrm's HTTP transport with certificate pinning and separate connect/read timeouts.

pywinrm validates HTTPS certificates against a CA store or not at all.  vmforge does neither: the
guest's certificate is self-signed by vmforge, so the host checks its SHA-256 fingerprint against
the one recorded for the VM (urllib3's ``assert_fingerprint``) and refuses any other.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from winrm.exceptions import InvalidCredentialsError, WinRMTransportError
from winrm.transport import Transport

MISMATCH_MARKER = "Fingerprints did not match"


class FingerprintAdapter(HTTPAdapter):
    """Accept exactly the certificate whose SHA-256 is ``fingerprint`` (hostname not checked:
    the pin identifies the guest, whatever address it has today)."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs["assert_fingerprint"] = self.fingerprint
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, False, cert)  # the fingerprint replaces CA validation
        conn.assert_fingerprint = self.fingerprint


class PinnedTransport(Transport):
    def __init__(self, *, fingerprint: str | None, connect_timeout: float, read_timeout: float, **kwargs: Any) -> None:
        # No CA store and no proxy from the environment: the pin decides, and guests are direct.
        super().__init__(
            read_timeout_sec=int(read_timeout),
            server_cert_validation="validate",
            ca_trust_path=None,  # type: ignore[arg-type]  # None is what pywinrm checks for
            proxy=None,
            **kwargs,
        )
        self.fingerprint = fingerprint
        self.timeouts = (connect_timeout, read_timeout)

    def build_session(self) -> requests.Session:
        if self.session:
            return self.session
        session: requests.Session = super().build_session()
        if self.endpoint.lower().startswith("https"):
            if not self.fingerprint:
                raise ValueError("an HTTPS WinRM endpoint needs a pinned certificate fingerprint")
            session.verify = False
            session.mount("https://", FingerprintAdapter(self.fingerprint))
        return session

    def _send_message_request(
        self, session: requests.Session, prepared_request: requests.PreparedRequest
    ) -> requests.Response:
        try:
            response = session.send(prepared_request, timeout=self.timeouts)
            response.raise_for_status()
            return response
        except requests.HTTPError as ex:
            failed = ex.response
            if failed is None:
                raise
            if failed.status_code == 401:
                raise InvalidCredentialsError("the specified credentials were rejected by the server") from None
            text = self._get_message_response_text(failed) if failed.content else b""
            raise WinRMTransportError("http", failed.status_code, text.decode("utf-8", "replace")) from None
