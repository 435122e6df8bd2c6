"""HTTP front end: a keep-alive HTTP/1.1 server on loopback that speaks the Salesforce contract.

The HTTP plumbing (request parsing, one-write responses) is in `httpd`; this
module routes requests to OAuth, describe, limits and sObject Collections.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from . import dml, sobject, tooling
from .admin import handle_admin
from .auth import OAuthError, OAuthServer, parse_basic
from .bulk import BulkIngest
from .faults import BULK_BATCH_ALLOCATION
from .httpd import JSON_TYPE, FastHandler
from .org import Org
from .query import handle as handle_query

MIN_VERSION, MAX_VERSION = 31, 67
COLLECTIONS_MIN, UPSERT_MIN = 42, 46
_SEASONS = ("Winter", "Spring", "Summer")
_INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
_MAINTENANCE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>"
    b"<h1>Salesforce is down for maintenance</h1><p>The server is temporarily unable to "
    b"service your request. Please try again later.</p></body></html>"
)


def api_versions() -> list[dict[str, str]]:
    """`GET /services/data/` body: every supported version with its release label."""
    result = []
    for number in range(MIN_VERSION, MAX_VERSION + 1):
        offset = number - 59  # 59.0 is Winter '24
        label = f"{_SEASONS[offset % 3]} '{24 + offset // 3:02d}"
        result.append({"label": label, "url": f"/services/data/v{number}.0",
                       "version": f"{number}.0"})
    return result


def parse_version(text: str) -> int | None:
    if not (text.startswith("v") and text.endswith(".0")):
        return None
    number = text[1:-2]
    if not number.isdigit() or not MIN_VERSION <= int(number) <= MAX_VERSION:
        return None
    return int(number)


@dataclass
class App:
    """What a request handler needs: the org, the token endpoint and the public base URL."""

    org: Org
    oauth: OAuthServer
    base_url: str = ""
    bulk: BulkIngest = field(init=False)

    def __post_init__(self) -> None:
        self.bulk = BulkIngest(self.org)

    def stats(self) -> dict[str, Any]:
        return {**self.org.stats(self.oauth.tokens.token_requests), "bulk": self.bulk.stats()}


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threaded server that remembers open connections so `stop()` can cut idle keep-alives.

    With a TLS context each accepted connection is wrapped, and its handshake runs
    in the connection's own thread, so a client that stalls or refuses the
    certificate never holds up the accept loop.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # benchmarks open many connections at once

    def __init__(self, address: tuple[str, int], app: App,
                 tls: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.tls = tls
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = self.socket.accept()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up or fails the TLS handshake is not the emulator's error."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def track(self, conn: socket.socket, *, opened: bool) -> None:
        with self.connections_lock:
            if opened:
                self.connections.add(conn)
            else:
                self.connections.discard(conn)

    def server_close(self) -> None:
        self.app.bulk.stop()
        super().server_close()

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() in ("bearer", "oauth") and token else None


class Handler(FastHandler):
    """Routes one request; everything org-specific lives in `Org`, `dml` and `auth`."""

    server_version = "SalesforceEmulator"
    timeout = 300
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, opened=True)
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except OSError:
                self.server.track(self.connection, opened=False)  # finish() will not run
                raise

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, opened=False)

    def dispatch(self, method: str) -> None:
        """Route one request; an emulator bug answers 500 instead of killing the connection."""
        try:
            self._route_request(method)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            self.send_json(500, [{"errorCode": "UNKNOWN_EXCEPTION",
                                  "message": f"emulator internal error: {exc!r}"}])

    def _route_request(self, method: str) -> None:
        app = self.server.app
        parts = urlsplit(self.path)
        path = parts.path
        body = self.read_body()
        if body is None:
            self.close_connection = True
            self.send_json(400, [{"message": "Bad request body", "errorCode": "INVALID_INPUT"}])
            return
        if path.startswith("/__emulator__/"):
            status, payload = handle_admin(app, method, path, body)
            self.send_json(status, payload)
            return
        app.org.note_request()
        if path in ("/services/oauth2/token", "/services/oauth2/revoke"):
            self._oauth(method, path, parts.query, body)
        elif path == "/services/oauth2/userinfo":
            self._userinfo()
        elif path in ("/services/data", "/services/data/"):
            if method in ("GET", "HEAD"):
                self.send_json(200, api_versions())
            else:
                self._method_not_allowed(method, "GET,HEAD", {})
        elif path.startswith("/services/data/"):
            self._api(method, path[len("/services/data/"):], parts.query, body)
        else:
            self.send_json(404, dml.not_found().body)

    def _method_not_allowed(self, method: str, allowed: str, headers: dict[str, str]) -> None:
        self.send_json(405, [{"errorCode": "METHOD_NOT_ALLOWED",
                              "message": f"HTTP Method '{method}' not allowed. Allowed are "
                                         f"{allowed}"}], headers)

    # --- OAuth ----------------------------------------------------------------------

    def _oauth(self, method: str, path: str, query: str, body: bytes) -> None:
        app = self.server.app
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            if method != "POST" and path.endswith("/token"):
                raise OAuthError("invalid_request", "must use HTTP POST")
            if path.endswith("/revoke"):
                app.oauth.revoke(params.get("token", ""))
                self.send(200, b"", JSON_TYPE, headers)
                return
            basic = parse_basic(self.headers.get("Authorization"))
            result = app.oauth.token(params, basic, app.base_url)
        except OAuthError as exc:
            self.send_json(exc.status, exc.body, headers)
            return
        self.send_json(200, result, headers)

    def _userinfo(self) -> None:
        app = self.server.app
        token = _bearer(self.headers.get("Authorization"))
        check = app.oauth.tokens.check(token, app.org.faults.token_ttl_requests) \
            if token else None
        if check is None or check.status != "ok":
            self.send_json(403, "Bad_OAuth_Token")
            return
        self.send_json(200, tooling.userinfo(app.oauth.credentials.username, app.oauth.org_id,
                                             app.base_url))

    # --- authenticated REST API -------------------------------------------------------

    def _api(self, method: str, rest: str, query: str, body: bytes) -> None:
        org = self.server.app.org
        token = _bearer(self.headers.get("Authorization"))
        check = self.server.app.oauth.tokens.check(token, org.faults.token_ttl_requests) \
            if token else None
        if check is None or check.status != "ok":
            if check is not None and check.status == "expired":
                org.note_fault("token_expired")
            self.send_json(401, _INVALID_SESSION, {"WWW-Authenticate": "Token"})
            return
        admission = org.admit()
        limit = {"Sforce-Limit-Info": admission.limit_info}
        try:
            if admission.error:
                status, code, message = admission.error
                self.send_json(status, [{"message": message, "errorCode": code}], limit)
                return
            if admission.latency_s:
                self.respond_at = time.monotonic() + admission.latency_s
            if admission.fault == "drop":
                if admission.latency_s:
                    time.sleep(admission.latency_s)
                self.drop()
            elif admission.fault == "html_503":
                self.send(503, _MAINTENANCE_PAGE, "text/html;charset=UTF-8")
            elif admission.fault == "http_503":
                self.send_json(503, [{"errorCode": "SERVER_UNAVAILABLE",
                                      "message": "server too busy"}], limit)
            elif admission.fault == "http_500":
                self.send_json(500, [{"errorCode": "UNKNOWN_EXCEPTION",
                                      "message": "An unexpected error occurred. Please include "
                                                 "this ErrorId if you contact support: "
                                                 "1234567890-12345 (-1234567890)"}], limit)
            else:
                self._route(method, rest, query, body, limit)
        except dml.RequestError as exc:
            self.send_json(exc.status, exc.body, limit)
        finally:
            if admission.entered:
                org.release()

    def _route(self, method: str, rest: str, query: str, body: bytes,
               limit: dict[str, str]) -> None:
        org = self.server.app.org
        version_text, _, tail = rest.partition("/")
        version = parse_version(version_text)
        if version is None:
            raise dml.not_found()
        segments = [unquote(part) for part in tail.strip("/").split("/")] if tail.strip("/") \
            else []
        if segments == ["limits"] and method in ("GET", "HEAD"):
            self.send_json(200, _limits(org), limit)
        elif segments == ["sobjects"] and method in ("GET", "HEAD"):
            self.send_json(200, _describe_global(org), limit)
        elif len(segments) == 3 and segments[0] == "sobjects" and segments[2] == "describe":
            if method not in ("GET", "HEAD"):
                self._method_not_allowed(method, "GET,HEAD", limit)
                return
            schema = org.schemas_lower.get(segments[1].lower())
            if schema is None:
                raise dml.not_found()
            with org.lock:
                org.describe_calls[schema.name] = org.describe_calls.get(schema.name, 0) + 1
            self.send(200, schema.describe_body, JSON_TYPE, limit)
        elif segments and segments[0] == "sobjects" and len(segments) in (2, 3):
            status, payload, headers = sobject.handle(org, method, version, segments, body)
            if payload is None:
                self.send(status, b"", JSON_TYPE, {**limit, **headers})
            else:
                self.send_json(status, payload, {**limit, **headers})
        elif segments and segments[0] == "tooling":
            status, payload = tooling.handle(org, method, version, segments, query, body,
                                             self.headers.get("Sforce-Query-Options"))
            self.send_json(status, payload, limit)
        elif segments and segments[0] in ("query", "queryAll"):
            status, payload = handle_query(org, method, version, segments, query,
                                           len(self.path), self.headers.get("Sforce-Query-Options"))
            self.send_json(status, payload, limit)
        elif segments[:2] == ["composite", "sobjects"] and len(segments) in (2, 4):
            self._collections(method, version, segments, query, body, limit)
        elif segments[:2] == ["jobs", "ingest"]:
            status, payload, content_type = self.server.app.bulk.handle(
                method, version, segments[2:], body, self.headers.get("Content-Type", ""))
            self.send(status, payload, content_type, limit)
        else:
            raise dml.not_found()

    def _collections(self, method: str, version: int, segments: list[str], query: str,
                     body: bytes, limit: dict[str, str]) -> None:
        org = self.server.app.org
        if len(segments) == 4:
            if version < UPSERT_MIN:
                raise dml.not_found()
            if method != "PATCH":
                self._method_not_allowed(method, "PATCH", limit)
                return
            self.send(200, dml.upsert(org, segments[2], segments[3], body), JSON_TYPE, limit)
            return
        if version < COLLECTIONS_MIN:
            raise dml.not_found()
        if method == "POST":
            self.send(200, dml.create(org, body), JSON_TYPE, limit)
        elif method == "PATCH":
            self.send(200, dml.update(org, body), JSON_TYPE, limit)
        elif method == "DELETE":
            self.send(200, dml.delete(org, parse_qs(query, keep_blank_values=True)), JSON_TYPE,
                      limit)
        else:
            self._method_not_allowed(method, "DELETE,PATCH,POST", limit)


def _limits(org: Org) -> dict[str, Any]:
    with org.lock:
        limit, usage = org.faults.daily_api_limit, org.api_usage
        batches = org.bulk_batches_remaining
    return {
        "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
        "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - usage)},
        "DailyBulkApiBatches": {"Max": BULK_BATCH_ALLOCATION, "Remaining": batches},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        "FileStorageMB": {"Max": 1024, "Remaining": 1024},
    }


def _describe_global(org: Org) -> dict[str, Any]:
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [
            {"name": schema.name, "label": schema.label, "labelPlural": schema.label_plural,
             "keyPrefix": schema.key_prefix, "custom": False, "createable": True,
             "updateable": True, "deletable": True, "queryable": True}
            for schema in org.schemas.values()
        ],
    }
