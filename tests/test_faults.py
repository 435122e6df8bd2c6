"""Fault injection end to end: 503s (JSON and HTML), 500s, dropped connections, per-record
row locks, token expiry, concurrency limits and a token that stays refused.

SPEC §3 "Results", "Request-level failures" and "Delivery"; contract §3.3 and §6. Every run is
the real CLI in a subprocess against the emulator; outcomes are read back from the org.
"""

from __future__ import annotations

import math

import pytest
from _reliability import assert_org_matches, expected_contacts, no_traceback
from conftest import (
    SEGMENT_FIELDS,
    base_config,
    make_id,
    profile,
    run_target,
    seed_contacts,
    seed_leads,
    singer_lines,
)

from target_salesforce_crm.emulator import Emulator
from target_salesforce_crm.emulator.auth import TokenCheck
from target_salesforce_crm.salesforce.client import FRESH_REFUSALS_AFTER_SUCCESS

DISTINCT = 2600
UPDATES = 400  # later records for already-sent Ids, with newer values


def _fault_input(ids: list[str], lead_id: str) -> tuple[list[dict], list[dict], dict[str, str]]:
    """3000 valid profiles (400 of them re-sending an Id with newer, partial values) and six
    deliberately bad records; returns (all records in stream order, valid ones, bad codes)."""
    valid = [
        profile(record_id, n, seg_loyal="realized",
                seg_churn="existing" if n % 3 else "exited")
        for n, record_id in enumerate(ids)
    ]
    for k in range(UPDATES):
        n = (k * 11) % DISTINCT  # distinct Ids, spread far from their first record
        valid.append({
            "crmID": ids[n],
            "person": {"name": {"lastName": f"Final{n}"}},  # no firstName: FirstName is kept
            "personalEmail": {"address": f"final{n}@example.net"},
            "segmentMembership": {"ups": {"seg-loyal": {"status": "exited"},
                                          "seg-news": {"status": "realized"}}},
        })
    bad_email = profile(ids[10], 90001, seg_loyal="realized")
    bad_email["personalEmail"]["address"] = "not-an-email"
    blank_name = profile(ids[11], 90006, seg_loyal="realized")
    blank_name["person"]["name"]["lastName"] = ""
    bad = {
        "missing": (profile(None, 90002), "MISSING_ID"),
        "malformed": (profile("003NOTANID", 90003), "MALFORMED_ID"),
        "foreign": (profile(lead_id, 90004), "WRONG_OBJECT_ID"),
        "unknown": (profile(make_id("003", 987654), 90005), "ENTITY_IS_DELETED"),
        "email": (bad_email, "INVALID_EMAIL_ADDRESS"),
        "blank": (blank_name, "REQUIRED_FIELD_MISSING"),
    }
    stream = list(valid)
    for offset, (record, _) in enumerate(bad.values()):
        stream.insert(250 + offset * 450, record)
    return stream, valid, {name: code for name, (_, code) in bad.items()}


@pytest.mark.slow
def test_fault_heavy_run_lands_every_valid_record_exactly_as_sent(tmp_path):
    emu = Emulator(
        segment_fields=SEGMENT_FIELDS, random_seed=20261128, latency_ms=20,
        http_503_rate=0.05, html_503_rate=0.05,  # 10 % 503s, half of them HTML pages
        drop_rate=0.03, lock_rate=0.05, token_ttl_requests=30,
    ).start()
    try:
        ids = seed_contacts(emu, DISTINCT)
        lead_id = seed_leads(emu, 1)[0]
        stream, valid, bad_codes = _fault_input(ids, lead_id)
        # small calls: about 200 requests, so that every kind of fault surely shows up
        config = base_config(emu, tmp_path, max_concurrency=4, batch_size=25)
        run = run_target(config, singer_lines("contacts", stream, state_every=500), tmp_path)

        assert run.returncode == 0, run.stderr[-3000:]
        assert run.states[-1] == {"offset": len(stream)}
        # the org holds every valid record's final values and statuses
        assert_org_matches(emu, expected_contacts(valid))
        stored = emu.get("Contact", ids[0])
        assert (stored["LastName"], stored["FirstName"], stored["Email"]) == (
            "Final0", "First0", "final0@example.net")
        assert (stored["Seg_Loyal__c"], stored["Seg_Churn_Risk__c"],
                stored["Seg_Newsletter__c"]) == ("exited", "exited", "realized")
        # the dead-letter file holds exactly the deliberately bad records
        assert sorted(r["error_code"] for r in run.rejected) == sorted(bad_codes.values())
        assert {r["record"]["person"]["name"]["firstName"] for r in run.rejected} == {
            f"First{n}" for n in range(90001, 90007)}

        stats = emu.stats()
        faults = stats["faults_injected"]
        report = run.report
        totals, api = report["totals"], report["api"]
        stream_stats = report["streams"]["contacts"]
        assert report["status"] == "succeeded" and report["error"] is None
        # the faults really happened
        assert faults["http_503"] > 0 and faults["html_503"] > 0
        assert faults["lock"] > 0 and faults["token_expired"] > 0 and faults["drop"] > 0
        # counters agree with each other and with what the org saw
        assert totals["received"] == len(stream)
        assert totals["rejected"] == len(bad_codes) == api["dead_letter_lines"]
        assert totals["updated"] + totals["rejected"] + stream_stats["merged_duplicates"] == (
            len(stream))
        assert totals["retried"] > 0 and totals["retried"] == faults["lock"]
        request_faults = faults["http_503"] + faults["html_503"] + faults["drop"]
        assert api["retried_calls"] > 0 and api["retried_calls"] == request_faults
        assert api["reauthentications"] >= faults["token_expired"] > 0
        assert api["token_calls"] == stats["token_requests"] >= 2
        assert api["collections_calls"] == stats["collections_calls"]
        # every record reaching Salesforce was counted once per attempt: landed, retried after
        # a row lock, or refused by the org (the unknown Id)
        assert stats["collections_records"] == totals["updated"] + totals["retried"] + 1
        assert sum(report["segments"]["Seg_Loyal__c"].values()) == totals["updated"]
    finally:
        emu.stop()


def test_a_second_401_right_after_reauthentication_is_a_clear_fatal_error(tmp_path):
    emu = Emulator(segment_fields=SEGMENT_FIELDS).start()
    try:
        ids = seed_contacts(emu, 1000)
        store = emu._app.oauth.tokens  # the org starts refusing every session after 3 calls
        real_check = store.check
        seen = {"api_calls": 0}

        def refuse_after_three(token, ttl_requests):
            seen["api_calls"] += 1
            if seen["api_calls"] > 3:
                return TokenCheck("invalid")
            return real_check(token, ttl_requests)

        store.check = refuse_after_three
        records = [profile(i, n, seg_loyal="realized") for n, i in enumerate(ids)]
        config = base_config(emu, tmp_path, batch_size=100, max_concurrency=1)
        run = run_target(config, singer_lines("contacts", records, state_every=100), tmp_path)

        assert run.returncode == 1
        assert "rejected a freshly issued token" in run.stderr
        assert no_traceback(run.stderr)
        stats = emu.stats()
        # describe + 2 collections calls, then a 401 and a re-authentication; after tokens
        # worked, a fresh one refused may be an expiry under load, so three more grants are
        # tried (each refused) before the run stops, and nothing is sent after that
        assert stats["token_requests"] == 1 + 1 + FRESH_REFUSALS_AFTER_SUCCESS
        assert stats["requests"] == 7 + 2 * FRESH_REFUSALS_AFTER_SUCCESS
        assert stats["collections_calls"] == 2
        assert run.states == [{"offset": 200}]  # what the two landed calls cover, no more
        assert [emu.get("Contact", i)["LastName"] for i in ids[198:202]] == [
            "Last198", "Last199", "Old200", "Old201"]
        assert run.report["status"] == "failed"
        assert "freshly issued token" in run.report["error"]
    finally:
        emu.stop()


@pytest.mark.slow
def test_concurrent_long_txn_limit_backs_off_lowers_concurrency_and_lands_everything(tmp_path):
    emu = Emulator(segment_fields=SEGMENT_FIELDS, latency_ms=150, concurrency_limit=1).start()
    try:
        ids = seed_contacts(emu, 2000)
        records = [profile(i, n, seg_churn="realized") for n, i in enumerate(ids)]
        config = base_config(emu, tmp_path, max_concurrency=4, batch_size=100)
        run = run_target(config, singer_lines("contacts", records), tmp_path)

        assert run.returncode == 0, run.stderr[-3000:]
        assert run.states == [{"offset": 2000}]
        assert run.rejected == []
        assert_org_matches(emu, expected_contacts(records))
        stats = emu.stats()
        assert stats["faults_injected"]["concurrency_limit"] > 0
        assert stats["collections_calls"] == math.ceil(2000 / 100)
        report = run.report
        assert report["api"]["max_concurrency_now"] < 4
        assert report["api"]["retried_calls"] >= stats["faults_injected"]["concurrency_limit"]
        assert report["totals"]["updated"] == 2000
        assert "lowering concurrency" in run.stderr
    finally:
        emu.stop()


def test_occasional_500s_are_retried_and_exhaust_nothing(tmp_path):
    emu = Emulator(segment_fields=SEGMENT_FIELDS, http_500_rate=0.05, random_seed=5).start()
    try:
        ids = seed_contacts(emu, 3000)
        records = [profile(i, n, seg_news="existing") for n, i in enumerate(ids)]
        # 150 calls, so that a 5 % rate surely hits some of them
        config = base_config(emu, tmp_path, batch_size=20, max_concurrency=4)
        run = run_target(config, singer_lines("contacts", records, state_every=1000), tmp_path)

        assert run.returncode == 0, run.stderr[-3000:]
        assert run.states[-1] == {"offset": 3000}
        assert run.rejected == []
        assert_org_matches(emu, expected_contacts(records))
        stats = emu.stats()
        assert stats["faults_injected"]["http_500"] > 0
        assert stats["collections_calls"] == 3000 // 20  # each chunk written exactly once
        report = run.report
        assert report["api"]["retried_calls"] == stats["faults_injected"]["http_500"]
        assert report["totals"] == {**report["totals"], "updated": 3000, "rejected": 0}
    finally:
        emu.stop()
