"""HTTP to the Salesforce REST API: auth replay, retries, limits, error classification.

One keep-alive transport (transport.py) is shared by all worker threads. Every call goes through
``SalesforceClient.call``, which applies the single policy of ``errors.classify_response``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import msgspec
import requests

from target_salesforce_crm.salesforce.auth import Token, TokenProvider
from target_salesforce_crm.salesforce.errors import (
    ApiLimitReached,
    AuthenticationError,
    ErrorClass,
    RequestFailed,
    RetriesExhausted,
    classify_response,
)
from target_salesforce_crm.salesforce.retry import Backoff, parse_retry_after
from target_salesforce_crm.salesforce.transport import Answer, Transport, TransportError

LOGGER = logging.getLogger("target-salesforce-crm")
MAX_REAUTH_PER_CALL = 10  # bound on refreshing tokens that worked, then expired, in one call
# fresh tokens refused in a row before a call gives up: one may race another thread's refresh;
# once a token of this run has worked, a few more may be expiries under many calls in flight
FRESH_REFUSALS_AFTER_SUCCESS = 3
# request bodies hold only str/int/float/bool/None (mapping.py rejects NaN and infinities)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_API_PREFIX = re.compile(r"^/services/data/v\d+\.\d+/")  # nextRecordsUrl is a full path
JSON_TYPE = "application/json"
_LIMIT_INFO = re.compile(r"(?<![\w-])api-usage=(\d+)/(\d+)")  # not per-app-api-usage


class ApiUsage:
    """Daily API usage from ``Sforce-Limit-Info``, and the decision to stop before a share."""

    def __init__(self, limit_percent: float) -> None:
        self.limit_percent = limit_percent
        self.used: int | None = None
        self.max: int | None = None
        self._in_flight = 0
        self._lock = threading.Lock()
        self.stopped: ApiLimitReached | None = None

    def settle(self, header: str | None) -> None:
        """Release the claim and record the answer's usage (never lowered by a late answer)."""
        match = _LIMIT_INFO.search(header or "")
        with self._lock:
            self._in_flight -= 1
            if match:
                used, limit = int(match.group(1)), int(match.group(2))
                self.used = used if self.used is None else max(self.used, used)
                self.max = limit

    @property
    def percent(self) -> float | None:
        if self.used is None or not self.max:
            return None
        return 100.0 * self.used / self.max

    def reserve(self) -> None:
        """Claim one call, or raise ApiLimitReached if it would pass the allowed share."""
        with self._lock:
            if self.stopped:
                raise self.stopped
            if self.used is not None and self.max:
                allowed = self.max * self.limit_percent / 100.0
                if self.used + self._in_flight + 1 > allowed:
                    self.stopped = ApiLimitReached(
                        f"stopped before passing api_usage_limit_percent="
                        f"{self.limit_percent:g}: the org has used {self.used} of its "
                        f"{self.max} daily API requests"
                    )
                    raise self.stopped
            self._in_flight += 1

    def exhausted(self, message: str) -> ApiLimitReached:
        with self._lock:
            if not self.stopped:
                self.stopped = ApiLimitReached(message)
            return self.stopped


@dataclass
class CallCounts:
    """API calls made, by kind (each counts against the org's daily allocation)."""

    total: int = 0
    describe: int = 0
    collections: int = 0
    query: int = 0
    provisioning: int = 0
    bulk: int = 0
    retries: int = 0
    reauth: int = 0


class SalesforceClient:
    """Authenticated JSON calls to ``{instance_url}/services/data/vXX.X/...``."""

    def __init__(
        self,
        tokens: TokenProvider,
        api_version: str,
        session: requests.Session,
        *,
        api_usage_limit_percent: float = 100.0,
        on_concurrency_limit: Callable[[], None] = lambda: None,
    ) -> None:
        self.tokens = tokens
        self.api_version = api_version
        self.session = session
        self.transport = Transport(session)
        self.usage = ApiUsage(api_usage_limit_percent)
        self.counts = CallCounts()
        self._counts_lock = threading.Lock()
        self.on_concurrency_limit = on_concurrency_limit
        self._proven = False  # a token of this run has been accepted at least once

    def describe(self, object_type: str) -> dict[str, Any]:
        try:
            return self.call("GET", f"sobjects/{object_type}/describe/", kind="describe")
        except RequestFailed as exc:
            if exc.status != 404:
                raise
            raise RequestFailed(
                404, exc.error_code,
                f"describe of {object_type} answered HTTP 404 {exc.error_code or ''}: "
                f"{object_type} is unknown at api_version {self.api_version!r} or the "
                f"integration user lacks read permission on {object_type} (object permissions)",
            ) from None

    def collections_update(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = {"allOrNone": False, "records": records}
        return self.call("PATCH", "composite/sobjects", body, kind="collections")

    def collections_create(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = {"allOrNone": False, "records": records}
        return self.call("POST", "composite/sobjects", body, kind="collections")

    def collections_delete(self, record_ids: list[str]) -> list[dict[str, Any]]:
        query = urlencode({"ids": ",".join(record_ids), "allOrNone": "false"})
        path = f"composite/sobjects?{query}"
        return self.call("DELETE", path, kind="collections")

    def collections_upsert(
        self, object_type: str, external_id_field: str, records: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        path = f"composite/sobjects/{object_type}/{external_id_field}"
        body = {"allOrNone": False, "records": records}
        return self.call("PATCH", path, body, kind="collections")

    def query(self, soql: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every row of a SOQL query (``queryAll`` with ``include_deleted``), following
        ``nextRecordsUrl`` pages (each page is one API call)."""
        resource = "queryAll" if include_deleted else "query"
        page = self.call("GET", f"{resource}?{urlencode({'q': soql})}", kind="query")
        rows: list[dict[str, Any]] = list(page.get("records") or [])
        while not page.get("done", True) and page.get("nextRecordsUrl"):
            path = _API_PREFIX.sub("", str(page["nextRecordsUrl"]), count=1)
            page = self.call("GET", path, kind="query")
            rows.extend(page.get("records") or [])
        return rows

    def _count(self, kind: str) -> None:
        with self._counts_lock:
            setattr(self.counts, kind, getattr(self.counts, kind) + 1)

    def call(self, method: str, path: str, body: Any = None, kind: str | None = None) -> Any:
        """One logical JSON call: retried on transient errors, replayed once after re-auth."""
        data = None if body is None else _encode(body)
        _, payload = self._exchange(method, path, data, JSON_TYPE, JSON_TYPE, kind,
                                    expect_json=True)
        return payload

    def call_raw(self, method: str, path: str, body: bytes | Path | None = None, *,
                 content_type: str = JSON_TYPE, accept: str = JSON_TYPE,
                 kind: str | None = None, into: Path | None = None) -> bytes:
        """One logical call whose bodies are not JSON (Bulk CSV uploads and results), under
        the same retry and re-auth policy as ``call``; a file body is streamed from disk and
        an answer into ``into``, each reopened for every attempt. Returns the answer's bytes
        (empty for 201/204, or when written to ``into``)."""
        answer, _ = self._exchange(method, path, body, content_type, accept, kind,
                                   expect_json=False, into=into)
        return answer.content

    def _exchange(self, method: str, path: str, data: bytes | Path | None, content_type: str,
                  accept: str, kind: str | None, *, expect_json: bool,
                  into: Path | None = None) -> tuple[Answer, Any]:
        """The retry loop both call kinds share; an answer that should be JSON and is not
        counts as a transient failure."""
        backoff = Backoff()
        token = self.tokens.token()
        reauthentications = 0
        fresh_refusals = 0
        while True:
            self.usage.reserve()
            try:
                response = self._send(method, token, path, data, content_type, accept, into)
            except TransportError as exc:
                self.usage.settle(None)
                self._retry_or_raise(backoff, None, f"{type(exc).__name__} on {method} {path}")
                continue
            self.usage.settle(response.headers.get("Sforce-Limit-Info"))
            if response.status_code != 401:
                token.accepted += 1
                self._proven = True
            success = 200 <= response.status_code < 300
            if success and not expect_json:
                if kind:
                    self._count(kind)
                return response, None
            payload, parsed = _parse_json(response)
            if success:
                if parsed:
                    if kind:
                        self._count(kind)  # answered calls, by kind; retries counted apart
                    return response, payload
                self._retry_or_raise(backoff, None, f"a non-JSON answer to {method} {path}")
                continue
            code, message = _first_error(payload)
            error_class = classify_response(response.status_code, code, message)
            if not parsed and error_class is ErrorClass.PERMANENT:
                error_class = ErrorClass.TRANSIENT
            if error_class is ErrorClass.AUTH:
                # a fresh token refused once may have raced another thread's refresh; refused
                # again after a grant of our own, and no token ever worked this run, the
                # credentials cannot call the API (once one worked, refusals are expiries)
                if reauthentications and not token.accepted:
                    fresh_refusals += 1
                refusals_allowed = FRESH_REFUSALS_AFTER_SUCCESS if self._proven else 1
                if fresh_refusals > refusals_allowed or reauthentications >= MAX_REAUTH_PER_CALL:
                    raise AuthenticationError(
                        f"Salesforce rejected a freshly issued token on {method} {path} "
                        f"({code or response.status_code}); check the connected app's API scope "
                        "and the user's API Enabled permission"
                    )
                reauthentications += 1
                self._count("reauth")
                LOGGER.info("Session expired or invalid; re-authenticating once and replaying")
                token = self.tokens.refresh(token, force=fresh_refusals > 0)
                continue
            if error_class is ErrorClass.QUOTA:
                raise self.usage.exhausted(
                    f"Salesforce answered {code}: {message} — the org's daily API allocation "
                    "is used up"
                )
            if error_class is ErrorClass.CONCURRENCY:
                self.on_concurrency_limit()
                self._retry_or_raise(backoff, None, f"{code} ({message})")
                continue
            if error_class is ErrorClass.TRANSIENT:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                self._retry_or_raise(backoff, retry_after, f"HTTP {response.status_code} {code}")
                continue
            hint = ""
            if response.status_code == 404:
                hint = f" (check api_version {self.api_version!r} and the object name)"
            raise RequestFailed(
                response.status_code,
                code,
                f"Salesforce refused {method} {path}: HTTP {response.status_code} "
                f"{code or ''} {message or ''}".strip() + hint,
            )

    def _send(self, method: str, token: Token, path: str, data: bytes | Path | None,
              content_type: str, accept: str, into: Path | None = None) -> Answer:
        """One HTTP request (each one counts against the org's daily limit)."""
        # a path from the instance root (e.g. /services/oauth2/userinfo), else a REST resource
        url = (f"{token.instance_url}{path}" if path.startswith("/")
               else f"{token.instance_url}/services/data/v{self.api_version}/{path}")
        headers = {"Authorization": f"Bearer {token.access_token}", "Accept": accept}
        with self._counts_lock:
            self.counts.total += 1
        if data is not None:
            headers["Content-Type"] = content_type
        with contextlib.ExitStack() as files:
            body: bytes | IO[bytes] | None = data if not isinstance(data, Path) else None
            if isinstance(data, Path):
                headers["Content-Length"] = str(data.stat().st_size)
                body = files.enter_context(data.open("rb"))
            sink = files.enter_context(into.open("wb")) if into is not None else None
            return self.transport.request(method, url, headers, body, sink)

    def _retry_or_raise(self, backoff: Backoff, retry_after: float | None, what: str) -> None:
        self._count("retries")
        LOGGER.info("Transient failure (%s); retrying with backoff", what)
        if not backoff.sleep(retry_after):
            raise RetriesExhausted(
                f"Salesforce kept failing after {backoff.attempts} retries: {what}"
            )


def _parse_json(response: Answer) -> tuple[Any, bool]:
    try:
        return _decode(response.content), True
    except msgspec.DecodeError:
        return None, False


def _first_error(payload: Any) -> tuple[str | None, str | None]:
    """``errorCode`` and ``message`` from the REST error array (or a bare error object)."""
    item = payload[0] if isinstance(payload, list) and payload else payload
    if isinstance(item, dict):
        code = item.get("errorCode") or item.get("error")
        message = item.get("message") or item.get("error_description")
        return (str(code) if code else None), (str(message) if message else None)
    return None, None
