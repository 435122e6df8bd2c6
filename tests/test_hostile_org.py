"""A hostile or broken token endpoint: the bearer token never leaves for a host that is not
Salesforce's, and each broken answer gets a message that points at the real cause.

End to end through the CLI against the emulator's `instance_url`, `omit_access_token` faults;
a listening socket on another loopback address records any connection that would carry the
token. Unit tests pin `refused_instance_host`'s whole-label rules.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _reliability import no_traceback
from conftest import SEGMENT_FIELDS, base_config, profile, run_target, seed_contacts, singer_lines

from target_salesforce_crm.emulator import Emulator
from target_salesforce_crm.salesforce.auth import SALESFORCE_DOMAINS, refused_instance_host


class ConnectionRecorder:
    """A TCP listener that only counts the connections it accepts (TLS or plain alike)."""

    def __init__(self, host: str) -> None:
        self._socket = socket.create_server((host, 0))
        self._socket.settimeout(0.1)
        self.port = self._socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def recorders() -> Iterator[dict[str, ConnectionRecorder]]:
    """One listener on 127.0.0.1 (reached as `localhost`) and one on 127.0.0.2."""
    made = {"localhost": ConnectionRecorder("127.0.0.1"),
            "other_loopback": ConnectionRecorder("127.0.0.2")}
    try:
        yield made
    finally:
        for recorder in made.values():
            recorder.close()


def _issued_tokens(emu: Emulator) -> list[str]:
    """Every access token the org handed out (the secret that must never be shown)."""
    return list(emu._app.oauth.tokens.access)


def _run_against(emu: Emulator, tmp_path: Path, **config: object):
    ids = seed_contacts(emu, 3)
    records = [profile(record_id, n, seg_loyal="realized") for n, record_id in enumerate(ids)]
    before = {record_id: emu.get("Contact", record_id) for record_id in ids}
    run = run_target(base_config(emu, tmp_path, **config), singer_lines("contacts", records),
                     tmp_path)
    assert {record_id: emu.get("Contact", record_id) for record_id in ids} == before
    assert run.states == [] and run.rejected == []
    return run


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR " in line]


@pytest.mark.parametrize(
    ("instance_url", "refused"),
    [
        ("http://evil.example", "evil.example"),
        ("https://login.salesforce.com.attacker.example", "login.salesforce.com.attacker.example"),
        ("https://127.0.0.2:{other_loopback}", "127.0.0.2:{other_loopback}"),
        ("http://localhost:{localhost}", "localhost:{localhost}"),
    ],
)
def test_a_hostile_instance_url_is_refused_before_the_token_goes_anywhere(
        instance_url: str, refused: str, recorders: dict[str, ConnectionRecorder],
        tmp_path: Path) -> None:
    ports = {name: recorder.port for name, recorder in recorders.items()}
    emu = Emulator(segment_fields=SEGMENT_FIELDS,
                   instance_url=instance_url.format_map(ports)).start()
    try:
        run = _run_against(emu, tmp_path)
        tokens = _issued_tokens(emu)
        stats = emu.stats()
    finally:
        emu.stop()

    assert run.returncode == 1
    assert no_traceback(run.stderr)
    refused_host = refused.format_map(ports)
    named = [line for line in _error_lines(run.stderr) if refused_host in line]
    assert len(named) == 1, run.stderr[-3000:]
    assert "nothing was sent there" in named[0]
    assert tokens and not any(token in run.stderr or token in run.stdout for token in tokens)
    assert not any(token in run.report["error"] for token in tokens)
    assert refused_host in run.report["error"]
    # one token call, then nothing: no describe, no collections, no connection elsewhere
    assert stats["token_requests"] == stats["requests"] == 1
    assert {name: recorder.connections for name, recorder in recorders.items()} == {
        "localhost": 0, "other_loopback": 0}


def test_a_token_response_without_access_token_says_so(tmp_path: Path) -> None:
    emu = Emulator(segment_fields=SEGMENT_FIELDS, omit_access_token=True).start()
    try:
        run = _run_against(emu, tmp_path)
        stats = emu.stats()
    finally:
        emu.stop()

    assert run.returncode == 1
    assert no_traceback(run.stderr)
    errors = [line for line in _error_lines(run.stderr) if "access_token" in line]
    assert len(errors) == 1, run.stderr[-3000:]
    assert "without an access_token" in errors[0]
    for credential in ("username", "password", "security_token"):
        assert credential not in errors[0]
    assert stats["requests"] == 1  # the token call; nothing after it


def test_describe_404_names_the_object_the_api_version_and_object_permissions(
        tmp_path: Path) -> None:
    emu = Emulator(segment_fields=SEGMENT_FIELDS).start()  # serves up to v67.0
    try:
        run = _run_against(emu, tmp_path, api_version="99.0")
        stats = emu.stats()
    finally:
        emu.stop()

    assert run.returncode == 1
    assert no_traceback(run.stderr)
    errors = [line for line in _error_lines(run.stderr) if "describe of Contact" in line]
    assert len(errors) == 1, run.stderr[-3000:]
    assert "'99.0'" in errors[0] and "404" in errors[0]
    assert "permission" in errors[0]
    assert stats["collections_calls"] == 0


# --- refused_instance_host: which hosts may receive the bearer token ------------------------

REAL_LOGIN = "https://login.salesforce.com"
EMULATOR_LOGIN = "http://127.0.0.1:8787"


@pytest.mark.parametrize("domain", SALESFORCE_DOMAINS)
def test_every_salesforce_domain_and_its_subdomains_are_accepted_over_https(domain: str) -> None:
    for url in (f"https://{domain}", f"https://na1.{domain}", f"https://acme.my.{domain}:443",
                f"https://NA1.{domain.upper()}", f"https://na1.{domain}./"):
        assert refused_instance_host(url, REAL_LOGIN) is None, url


@pytest.mark.parametrize("domain", SALESFORCE_DOMAINS)
def test_a_label_suffix_or_a_domain_used_as_a_prefix_is_refused(domain: str) -> None:
    assert refused_instance_host(f"https://evil{domain}", REAL_LOGIN) == f"evil{domain}"
    assert refused_instance_host(f"https://na1.{domain}.evil.example", REAL_LOGIN) == (
        f"na1.{domain}.evil.example")
    assert refused_instance_host(f"http://na1.{domain}", REAL_LOGIN) == f"na1.{domain}"


@pytest.mark.parametrize(
    ("instance_url", "shown"),
    [
        ("https://evilsalesforce.com", "evilsalesforce.com"),
        ("https://salesforce.com.evil.example", "salesforce.com.evil.example"),
        ("https://x@na1.salesforce.com", "x@na1.salesforce.com"),
        ("https://x:y@na1.salesforce.com", "x:y@na1.salesforce.com"),
        ("https://evil.example#@na1.salesforce.com", "evil.example"),
        ("ftp://na1.salesforce.com", "na1.salesforce.com"),
        ("https://", "https://"),
        ("na1.salesforce.com", "na1.salesforce.com"),
        ("http://127.0.0.1:8787", "127.0.0.1:8787"),
        ("https://localhost", "localhost"),
    ],
)
def test_hosts_refused_after_a_real_login(instance_url: str, shown: str) -> None:
    assert refused_instance_host(instance_url, REAL_LOGIN) == shown


def test_a_loopback_login_accepts_only_its_own_host() -> None:
    assert refused_instance_host("http://127.0.0.1:9999", EMULATOR_LOGIN) is None
    assert refused_instance_host("https://127.0.0.1:9999", EMULATOR_LOGIN) is None
    assert refused_instance_host("http://[::1]:9", "http://[::1]:8787") is None
    assert refused_instance_host("http://localhost:1", "https://localhost:8443") is None
    assert refused_instance_host("http://localhost:8787", EMULATOR_LOGIN) == "localhost:8787"
    assert refused_instance_host("http://127.0.0.2:8787", EMULATOR_LOGIN) == "127.0.0.2:8787"
    # an emulator's token never goes to a real org, and vice versa
    assert refused_instance_host("https://na1.salesforce.com", EMULATOR_LOGIN) == (
        "na1.salesforce.com")
    assert refused_instance_host("ws://127.0.0.1:8787", EMULATOR_LOGIN) == "127.0.0.1:8787"
    assert refused_instance_host("http://u@127.0.0.1:8787", EMULATOR_LOGIN) == "u@127.0.0.1:8787"


def test_the_recorders_do_see_a_connection(recorders: dict[str, ConnectionRecorder]) -> None:
    """The zero-connection checks above would catch a leak: each listener counts one."""
    for host, name in (("localhost", "localhost"), ("127.0.0.2", "other_loopback")):
        socket.create_connection((host, recorders[name].port), timeout=5).close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(r.connections < 1 for r in recorders.values()):
        time.sleep(0.01)
    assert {name: recorder.connections for name, recorder in recorders.items()} == {
        "localhost": 1, "other_loopback": 1}
