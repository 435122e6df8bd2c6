"""HTTPS end to end: the real CLI against the emulator serving TLS with a throwaway CA.

The CA comes from REQUESTS_CA_BUNDLE, as a user behind a TLS-inspecting proxy would set it;
verification is never switched off, so the wrong CA is a clear, fatal error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _reliability import no_traceback
from conftest import SEGMENT_FIELDS, base_config, profile, run_target, seed_contacts, singer_lines
from tls_helpers import TlsFiles, make_tls_files

from target_salesforce_crm.emulator import Emulator
from target_salesforce_crm.login_hosts import login_host_problem


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"), "org")


@pytest.fixture
def https_org(tls_files: TlsFiles) -> Iterator[Emulator]:
    emu = Emulator(segment_fields=SEGMENT_FIELDS, tls_cert=tls_files.server_cert,
                   tls_key=tls_files.server_key).start()
    try:
        yield emu
    finally:
        emu.stop()


def test_https_loopback_login_url_is_accepted_and_http_elsewhere_still_refused() -> None:
    assert login_host_problem("https://127.0.0.1:8443") is None
    assert login_host_problem("https://localhost:8443") is None
    assert login_host_problem("https://[::1]:8443") is None
    assert "must not carry a port" in (login_host_problem("https://acme.my.salesforce.com:8443")
                                        or "")
    assert "login_url host must be" in (login_host_problem("https://127.0.0.1.nip.io") or "")


def test_records_land_over_https_with_the_ca_from_requests_ca_bundle(
        https_org: Emulator, tls_files: TlsFiles, tmp_path: Path) -> None:
    assert https_org.url.startswith("https://127.0.0.1:")
    ids = seed_contacts(https_org, 30)
    records = [profile(record_id, n, seg_loyal="realized") for n, record_id in enumerate(ids)]
    run = run_target(base_config(https_org, tmp_path), singer_lines("contacts", records),
                     tmp_path, env={"REQUESTS_CA_BUNDLE": str(tls_files.ca_cert)})

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.states == [{"offset": 30}]
    assert run.rejected == []
    assert [https_org.get("Contact", i)["LastName"] for i in ids] == [
        f"Last{n}" for n in range(30)]
    assert {https_org.get("Contact", i)["Seg_Loyal__c"] for i in ids} == {"realized"}
    assert https_org.stats()["collections_calls"] == 1


def test_an_untrusted_certificate_stops_the_run_with_one_clear_message(
        https_org: Emulator, tmp_path: Path) -> None:
    other_ca = make_tls_files(tmp_path / "other", "other").ca_cert
    ids = seed_contacts(https_org, 5)
    before = {i: https_org.get("Contact", i) for i in ids}
    records = [profile(record_id, n, seg_loyal="realized") for n, record_id in enumerate(ids)]
    run = run_target(base_config(https_org, tmp_path), singer_lines("contacts", records),
                     tmp_path, env={"REQUESTS_CA_BUNDLE": str(other_ca)})

    host = https_org.url.removeprefix("https://")
    assert run.returncode == 1
    assert no_traceback(run.stderr)
    tls_lines = [line for line in run.stderr.splitlines() if "TLS verification of" in line]
    assert len(tls_lines) == 1, run.stderr[-3000:]
    assert host in tls_lines[0] and "failed" in tls_lines[0]
    assert "never switched off" in tls_lines[0]
    # no HTTP request got through the refused handshake: nothing written, no STATE
    assert https_org.stats()["requests"] == 0
    assert {i: https_org.get("Contact", i) for i in ids} == before
    assert run.states == []
    assert run.rejected == []
    assert run.report["status"] == "failed"
    assert "TLS verification of" in run.report["error"]
