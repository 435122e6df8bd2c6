"""A 401 that races another thread's token refresh does not end the run."""

from __future__ import annotations

from conftest import base_config, profile, run_target, seed_contacts, singer_lines


def test_sessions_expiring_under_many_calls_in_flight_are_survived(emulator, tmp_path):
    ids = seed_contacts(emulator, 3000)
    # every token works for two requests only, while eight calls are in flight: a fresh token
    # is often refused before any call it authorised has come back
    emulator.set_faults(token_ttl_requests=2, latency_ms=40)
    records = [profile(record_id, n, seg_loyal="realized") for n, record_id in enumerate(ids)]
    config = base_config(emulator, tmp_path, batch_size=50, max_concurrency=8)

    run = run_target(config, singer_lines("contacts", records), tmp_path)

    assert run.returncode == 0, run.stderr[-2000:]
    assert run.rejected == []
    assert all(emulator.get("Contact", i)["Seg_Loyal__c"] == "realized" for i in ids)
    assert run.report["api"]["reauthentications"] > 0
