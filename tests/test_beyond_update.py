"""Upsert by external id, JWT and refresh-token logins, and dry runs: CLI + emulator over HTTP."""

from __future__ import annotations

import json

from conftest import (
    CREDENTIALS,
    SEGMENT_FIELDS,
    base_config,
    profile,
    run_target,
    seed_contacts,
    singer_lines,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from target_salesforce_crm.emulator import Emulator
from target_salesforce_crm.salesforce.auth import jwt_audience


def _upsert_config(emu, tmp_path, **overrides):
    settings = {"operation": "upsert", "external_id_field": "External_Id__c",
                "external_id_source": "customerId", **overrides}
    return base_config(emu, tmp_path, **settings)


def _customer(n: int, **segments: str) -> dict:
    record = profile(None, n, **segments)
    record.pop("crmID")
    record["customerId"] = f"CUST-{n:05d}"
    return record


def test_upsert_creates_missing_and_updates_existing(emulator, tmp_path):
    existing = emulator.seed("Contact", [
        {"LastName": "Old", "External_Id__c": "cust-00001", "Email": "old@example.org"}])[0]
    records = [_customer(n, seg_loyal="realized") for n in range(1, 251)]
    # same key later in the same batch of 200: merged, so LastName comes from the first one
    records.insert(10, {"customerId": "CUST-00002", "person": {"name": {"firstName": "Again"}}})
    no_key = _customer(999)
    no_key.pop("customerId")
    no_last_name = _customer(998)
    no_last_name["person"]["name"].pop("lastName")
    records += [no_key, no_last_name]
    run = run_target(_upsert_config(emulator, tmp_path), singer_lines("customers", records),
                     tmp_path)

    assert run.returncode == 0, run.stderr
    by_key = {r["External_Id__c"].upper(): r for r in emulator.records("Contact")}
    assert len(by_key) == 250
    assert by_key["CUST-00001"]["Id"] == existing  # matched case-insensitively, updated
    assert by_key["CUST-00001"]["Email"] == "person1@example.com"
    assert by_key["CUST-00002"]["FirstName"] == "Again"  # merged within the batch
    assert by_key["CUST-00250"]["Seg_Loyal__c"] == "realized"
    assert sorted(r["error_code"] for r in run.rejected) == [
        "MISSING_EXTERNAL_ID", "REQUIRED_FIELD_MISSING"]
    stream = run.report["streams"]["customers"]
    assert (stream["created"], stream["updated"], stream["rejected"]) == (249, 1, 2)
    assert emulator.stats()["collections_calls"] == 2


def test_upsert_preflight_refuses_a_non_external_id_field(emulator, tmp_path):
    config = _upsert_config(emulator, tmp_path, external_id_field="Department")
    run = run_target(config, singer_lines("customers", [_customer(1)]), tmp_path)
    assert run.returncode != 0
    assert "Department" in run.stderr and "External ID" in run.stderr
    assert emulator.stats()["collections_calls"] == 0


def _key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def test_jwt_flow_logs_in_with_a_signed_assertion(tmp_path):
    private, public = _key_pair()
    with Emulator(segment_fields=SEGMENT_FIELDS, jwt_public_key=public) as emu:
        ids = seed_contacts(emu, 3)
        config = base_config(emu, tmp_path, auth_flow="jwt", private_key=private)
        for name in ("password", "security_token", "client_secret"):
            config.pop(name)
        run = run_target(config, singer_lines("contacts", [profile(i, n)
                                                           for n, i in enumerate(ids)]), tmp_path)
        assert run.returncode == 0, run.stderr
        assert emu.get("Contact", ids[2])["LastName"] == "Last2"
        assert "PRIVATE KEY" not in run.stderr

        other_private, _ = _key_pair()
        config["private_key"] = other_private
        bad = run_target(config, singer_lines("contacts", [profile(ids[0], 0)]), tmp_path)
        assert bad.returncode != 0
        assert "private_key" in bad.stderr
        assert "PRIVATE KEY" not in bad.stderr


def test_refresh_token_flow_uses_a_rotated_token(tmp_path):
    with Emulator(segment_fields=SEGMENT_FIELDS, refresh_tokens=["first-refresh-token"],
                  rotate_refresh_tokens=True, token_ttl_requests=2) as emu:
        ids = seed_contacts(emu, 600)
        # one call at a time: with a token that dies after 2 requests, parallel calls would
        # use a fresh token up before its first caller (no real org expires tokens that way)
        config = base_config(emu, tmp_path, auth_flow="refresh_token",
                             refresh_token="first-refresh-token", batch_size=100,
                             max_concurrency=1)
        for name in ("password", "security_token", "username"):
            config.pop(name)
        records = [profile(i, n) for n, i in enumerate(ids)]
        run = run_target(config, singer_lines("contacts", records), tmp_path)

        assert run.returncode == 0, run.stderr
        assert emu.get("Contact", ids[599])["LastName"] == "Last599"
        assert emu.stats()["token_requests"] >= 3  # expired every 2 requests: re-granted
        assert "rotated" in run.stderr
        assert "first-refresh-token" not in run.stderr


def test_dry_run_writes_nothing_and_reports_what_it_would_send(emulator, tmp_path):
    ids = seed_contacts(emulator, 30)
    records = [profile(i, n, seg_news="realized") for n, i in enumerate(ids)]
    records.append(profile(None, 99))
    config = base_config(emulator, tmp_path, dry_run=True)
    run = run_target(config, singer_lines("contacts", records), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.states == []  # no STATE: Meltano keeps its bookmark for the real run
    assert emulator.stats()["collections_calls"] == 0
    assert emulator.stats()["describe_calls"] == {"Contact": 1}
    assert emulator.get("Contact", ids[0])["LastName"] == "Old0"
    assert not (tmp_path / "rejected.jsonl").exists()
    report = run.report
    assert report["dry_run"] is True
    stream = report["streams"]["contacts"]
    assert (stream["would_send"], stream["rejected"]) == (30, 1)
    assert stream["rejections_by_code"] == {"MISSING_ID": 1}
    assert report["segments"]["Seg_Newsletter__c"] == {"realized": 30}
    assert len(report["sample_payloads"]) == 20
    first = report["sample_payloads"][0]
    assert first == {"attributes": {"type": "Contact"}, "id": ids[0], "LastName": "Last0",
                     "FirstName": "First0", "Email": "person0@example.com",
                     "Seg_Newsletter__c": "realized"}
    assert "person0@example.com" not in run.stderr  # logs carry no profile values
    assert "DRY RUN" in run.stderr


def test_client_credentials_flow(emulator, tmp_path):
    ids = seed_contacts(emulator, 2)
    config = base_config(emulator, tmp_path, auth_flow="client_credentials")
    for name in ("username", "password", "security_token"):
        config.pop(name)
    run = run_target(config, singer_lines("contacts", [profile(ids[1], 1)]), tmp_path)
    assert run.returncode == 0, run.stderr
    assert emulator.get("Contact", ids[1])["LastName"] == "Last1"


def test_wrong_password_names_the_credentials_to_check(emulator, tmp_path):
    config = base_config(emulator, tmp_path, password="Wr0ng-Pa55word!")
    run = run_target(config, singer_lines("contacts", [profile(None, 1)]), tmp_path)
    assert run.returncode == 1
    assert "invalid_grant" in run.stderr and "security_token" in run.stderr
    assert "Wr0ng-Pa55word!" not in run.stderr
    assert CREDENTIALS["security_token"] not in run.stderr
    assert "Traceback" not in run.stderr


def test_jwt_audience_follows_the_salesforce_host():
    assert jwt_audience("https://acme.my.salesforce.com") == "https://login.salesforce.com"
    assert jwt_audience("https://login.salesforce.com") == "https://login.salesforce.com"
    assert jwt_audience("https://acme--uat.sandbox.my.salesforce.com") == (
        "https://test.salesforce.com")
    assert jwt_audience("https://test.salesforce.com") == "https://test.salesforce.com"
    assert jwt_audience("http://127.0.0.1:8787") == "http://127.0.0.1:8787"


def test_batch_messages_are_refused_clearly(emulator, tmp_path):
    ids = seed_contacts(emulator, 1)
    text = singer_lines("contacts", [profile(ids[0], 0)]) + json.dumps(
        {"type": "BATCH", "stream": "contacts", "encoding": {"format": "jsonl"},
         "manifest": ["file:///tmp/x.jsonl"]}) + "\n"
    run = run_target(base_config(emulator, tmp_path), text, tmp_path)
    assert run.returncode == 1
    assert "batch_config" in run.stderr and "Traceback" not in run.stderr
    assert run.states == []
