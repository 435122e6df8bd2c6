"""HTTP/1.1 plumbing under the routes: request parsing, bodies and one-write responses.

`http.server` parses headers with the `email` package, which costs more than
the rest of a small request; ordinary `METHOD /path HTTP/1.1` requests get a
plain line-by-line reader instead, and anything else still goes through the
standard library. Responses are written in one `write` (status line, headers
and body together) with Nagle off, so a keep-alive client never waits on
delayed ACKs.
"""

from __future__ import annotations

import abc
import json
import socket
import time
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

JSON_TYPE = "application/json;charset=UTF-8"
_MAX_LINE = 65536
_MAX_HEADERS = 100
_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The Date header value, formatted once per second."""
    global _date_cache  # noqa: PLW0603 - a one-entry cache; a race only formats twice
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class Headers(dict[str, str]):
    """Request headers by lower-cased name; the first of repeated headers wins, as in `email`."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)


class FastHandler(BaseHTTPRequestHandler, abc.ABC):
    """Keep-alive HTTP/1.1 request handling that stays cheap per request."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    rbufsize = 1 << 16  # a whole 200-record body in one recv where the kernel has it
    respond_at = 0.0  # monotonic time before which the answer is held (latency_ms)
    headers: Any
    raw_requestline: bytes

    @abc.abstractmethod
    def dispatch(self, method: str) -> None:
        """Answer one request; the emulator's handler in server.py routes it."""

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_HEAD(self) -> None:
        self.dispatch("HEAD")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PATCH(self) -> None:
        self.dispatch("PATCH")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: benchmarks send thousands of requests."""

    def parse_request(self) -> bool:
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or words[2] != "HTTP/1.1":
            return super().parse_request()
        self.requestline = requestline
        self.command, path, self.request_version = words
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        self.close_connection = False
        headers = self._read_headers()
        if headers is None:
            self.close_connection = True
            return False
        self.headers = headers
        if headers.get("connection", "").lower() == "close":
            self.close_connection = True
        if headers.get("expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    def _read_headers(self) -> Headers | None:
        headers = Headers()
        last = ""
        for _ in range(_MAX_HEADERS + 1):
            line = self.rfile.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                return None
            if line in (b"\r\n", b"\n", b""):
                return headers
            text = line.decode("iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and last:
                headers[last] += " " + text.strip()  # obsolete line folding
                continue
            name, sep, value = text.partition(":")
            if sep:
                last = name.strip().lower()
                headers.setdefault(last, value.strip())
        self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
        return None

    def read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked); None when it is malformed."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        continue
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        if not length.isdigit():
            return None
        return self.rfile.read(int(length))

    def send(self, status: int, body: bytes, content_type: str = JSON_TYPE,
             headers: dict[str, str] | None = None) -> None:
        respond_at = self.respond_at
        if respond_at:
            # latency_ms models the org's whole response time, our own work included
            self.respond_at = 0.0
            delay = respond_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        head = (f"HTTP/1.1 {status} {_PHRASES.get(status, '')}\r\nDate: {http_date()}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n")
        if headers:
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if self.close_connection:
            head += "Connection: close\r\n"
        data = (head + "\r\n").encode("latin-1")
        self.wfile.write(data if self.command == "HEAD" else data + body)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(payload).encode(), JSON_TYPE, headers)

    def drop(self) -> None:
        """Simulate a connection cut mid-request: no status line, no body."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            return
