"""REST calls go through requests' own pools: the same proxy and TLS choices, less Python."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from target_salesforce_crm.emulator import Emulator
from target_salesforce_crm.salesforce.transport import Transport, new_session


class _ForwardingProxy(BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy: absolute-URI request lines are forwarded as they come."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        upstream.request("GET", target.path or "/", headers={"Accept": "application/json"})
        answer = upstream.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        upstream.close()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardingProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_direct_calls_send_the_path_and_read_the_answer(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    transport = Transport(new_session(2))
    answer = transport.request("GET", f"{emulator.url}/__emulator__/stats", {}, None)
    assert answer.status_code == 200
    assert json.loads(answer.content) == emulator.stats()
    assert transport._route(emulator.url).full_url is False


def test_an_http_proxy_from_the_environment_is_used_like_requests_would(
    emulator: Emulator, proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ForwardingProxy.seen.clear()
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    transport = Transport(new_session(2))
    answer = transport.request("GET", f"{emulator.url}/__emulator__/stats", {}, None)
    assert answer.status_code == 200
    assert json.loads(answer.content) == emulator.stats()
    assert _ForwardingProxy.seen == [f"{emulator.url}/__emulator__/stats"]
    assert transport._route(emulator.url).full_url is True
