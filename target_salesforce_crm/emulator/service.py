"""`Emulator`: the Python face of the local org, used by tests, benchmarks and the demo."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from .auth import ORG_ID, Credentials, OAuthServer
from .faults import FaultSettings
from .objects import more_schemas
from .options import set_options
from .org import Org
from .schema import build_schemas
from .server import App, EmulatorHTTPServer

# the documented fixture login every emulator accepts unless told otherwise
FIXTURE_CREDENTIALS = {
    "username": "integration@example.com",
    "password": "emulator-password",
    "security_token": "EMULATORTOKEN",
    "client_id": "emulator-consumer-key",
    "client_secret": "emulator-consumer-secret",
}


class Emulator:
    """A Salesforce org on loopback with Contacts, Leads, OAuth, limits and fault injection.

    Fault keywords (`latency_ms`, `http_503_rate`, `lock_rate`, `daily_api_limit`,
    `poison_values`, `lock_forever_ids`, `storage_full_after`, `instance_url`,
    `omit_access_token`, ...) are the fields of `FaultSettings`; unknown ones raise
    `ValueError`.
    """

    def __init__(
        self,
        segment_fields: Iterable[str] = ("Seg_Loyal__c",),
        username: str = FIXTURE_CREDENTIALS["username"],
        password: str = FIXTURE_CREDENTIALS["password"],
        security_token: str = FIXTURE_CREDENTIALS["security_token"],
        client_id: str = FIXTURE_CREDENTIALS["client_id"],
        client_secret: str = FIXTURE_CREDENTIALS["client_secret"],
        refresh_tokens: Iterable[str] = ("emulator-refresh-token",),
        rotate_refresh_tokens: bool = False,
        jwt_public_key: str | None = None,
        generic_login_host: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        org_id: str = ORG_ID,
        **faults: Any,
    ) -> None:
        if isinstance(segment_fields, str):
            segment_fields = [segment_fields]
        settings = FaultSettings()
        settings.update(faults)
        credentials = Credentials(
            username=username, password=password, security_token=security_token,
            client_id=client_id, client_secret=client_secret,
            rotate_refresh_tokens=rotate_refresh_tokens, jwt_public_key=jwt_public_key,
            generic_login_host=generic_login_host,
        )
        self._app = App(org=Org({**build_schemas(segment_fields), **more_schemas()}, settings),
                        oauth=OAuthServer(credentials, refresh_tokens, settings, org_id))
        self._host = host
        self._requested_port = port
        self._tls = _tls_context(tls_cert, tls_key)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and serve in a daemon thread; returns self so `Emulator().start()` chains."""
        if self._server is not None:
            return self
        server = EmulatorHTTPServer((self._host, self._requested_port), self._app, self._tls)
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "https" if self._tls is not None else "http"
        self._app.base_url = f"{scheme}://{host}:{server.server_address[1]}"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="salesforce-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open keep-alive connections, so the port is free again."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if not self._app.base_url:
            raise RuntimeError("emulator is not started")
        return self._app.base_url

    @property
    def org_id(self) -> str:
        """The 18-character organization Id in token responses' identity URL."""
        return self._app.oauth.org_id

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    # --- org state ----------------------------------------------------------------------

    def seed(self, object_name: str, records: Iterable[dict[str, Any]]) -> list[str]:
        """Store records without validation; returns their 18-char Ids in order."""
        return self._app.org.seed(object_name, records)

    def get(self, object_name: str, record_id: str) -> dict[str, Any] | None:
        return self._app.org.get(object_name, record_id)

    def records(self, object_name: str) -> list[dict[str, Any]]:
        return self._app.org.records(object_name)

    def stats(self) -> dict[str, Any]:
        return self._app.stats()

    def received(self) -> list[list[str]]:
        """Field names of the last 10,000 records sent to collections calls, oldest first."""
        with self._app.org.lock:
            return list(self._app.org.received)

    def set_faults(self, **faults: Any) -> None:
        """Change some fault settings; the others keep their values."""
        self._app.org.set_faults(faults)

    def set_options(self, **options: Any) -> dict[str, Any]:
        """Change behaviour switches such as `query_batch_size` (see `org.OPTIONS`)."""
        return set_options(self._app.org, options)

    def reset_usage(self) -> None:
        """Daily API usage back to zero, as when the rolling 24-hour window moves on."""
        self._app.org.reset_usage()


def _tls_context(cert: str | Path | None, key: str | Path | None) -> ssl.SSLContext | None:
    """A server context for HTTPS, or None for plain HTTP; the key may sit in the cert file."""
    if cert is None:
        if key is not None:
            raise ValueError("tls_key needs tls_cert")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
