"""HTTP transport: one keep-alive ``requests.Session``, and its connection pools driven directly
for REST calls.

requests adds about 1 ms of Python per call on top of urllib3 (hooks, cookies, a streaming
response wrapper); at 200 records per call that was a tenth of the target's CPU. So a REST call
takes the very pool requests would use for that host, with the proxy, CA-bundle and TLS settings
requests resolved from the environment, and sends through it with urllib3. Token calls, a few
per run, keep the plain session.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, cast
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from target_salesforce_crm.salesforce.errors import TlsVerificationFailed

# connect, read: Salesforce times a call out after 10 minutes; resending one still running
# could run triggers twice, so wait that long before calling it lost
TIMEOUT = (10.0, 610.0)
_URLLIB3_TIMEOUT = urllib3.Timeout(connect=TIMEOUT[0], read=TIMEOUT[1])
# a call that never got an answer: retried by the caller like a 503
TransportError = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


def new_session(pool_size: int) -> requests.Session:
    """A keep-alive session with room for one connection per concurrent call."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(pool_size, 2), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "target-salesforce-crm"
    return session


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read whole (gzip already decoded)."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes


@dataclass(frozen=True)
class _Route:
    pool: urllib3.HTTPConnectionPool
    full_url: bool  # through a plain-HTTP proxy the request line carries the whole URL


class Transport:
    """Sends REST calls over the session's pools; safe to share between worker threads."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self._base_headers: dict[str, Any] = dict(session.headers)
        self._routes: dict[tuple[str, str], _Route] = {}
        self._lock = threading.Lock()

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | IO[bytes] | None,
        into: IO[bytes] | None = None,
    ) -> Answer:
        """One HTTP exchange; raises one of ``TransportError`` when there is no answer. A file
        body is sent as it is read (its Content-Length given by the caller); with ``into``, a
        successful answer's body is written there as it arrives (``content`` stays empty)."""
        route = self._route(url)
        target = url if route.full_url else _path_and_query(url)
        try:
            response = route.pool.urlopen(
                method, target, body=body, headers={**self._base_headers, **headers},
                redirect=False, assert_same_host=False, retries=False,
                timeout=_URLLIB3_TIMEOUT, preload_content=into is None, decode_content=True,
            )
        except urllib3.exceptions.SSLError as exc:
            if _is_verification_failure(exc):
                raise TlsVerificationFailed(
                    f"TLS verification of {urlsplit(url).netloc} failed: its certificate is not "
                    "trusted by the CA bundle in use (REQUESTS_CA_BUNDLE, if set)"
                ) from None
            raise
        if into is None:
            return Answer(response.status, response.headers, response.data)
        try:
            if 200 <= response.status < 300:
                for block in response.stream(1 << 20, decode_content=True):
                    into.write(block)
                return Answer(response.status, response.headers, b"")
            return Answer(response.status, response.headers, response.read(decode_content=True))
        finally:
            response.release_conn()

    def _route(self, url: str) -> _Route:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        route = self._routes.get(key)
        if route is None:
            with self._lock:
                route = self._routes.get(key) or self._new_route(url)
                self._routes[key] = route
        return route

    def _new_route(self, url: str) -> _Route:
        """Exactly what ``HTTPAdapter.send`` would pick for this host (requests >= 2.32.3);
        a route that cannot be built (bad proxy URL, missing CA file) is a transport error."""
        try:
            return self._build_route(url)
        except (ValueError, LookupError) as exc:
            raise requests.exceptions.InvalidURL(f"cannot route {urlsplit(url).netloc}: {exc}"
                                                 ) from None

    def _build_route(self, url: str) -> _Route:
        settings = self.session.merge_environment_settings(url, {}, None, None, None)
        prepared = self.session.prepare_request(requests.Request("GET", url))
        adapter = self.session.get_adapter(url)
        if not isinstance(adapter, HTTPAdapter):
            msg = f"no HTTP adapter for {urlsplit(url).scheme} URLs"
            raise requests.exceptions.InvalidURL(msg)
        pool = adapter.get_connection_with_tls_context(
            prepared, settings["verify"], proxies=settings["proxies"], cert=settings["cert"]
        )
        adapter.cert_verify(pool, url, settings["verify"], settings["cert"])
        full_url = not adapter.request_url(prepared, settings["proxies"]).startswith("/")
        return _Route(cast(urllib3.HTTPConnectionPool, pool), full_url)


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"


def _is_verification_failure(exc: BaseException) -> bool:
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text
