"""A backlog larger than one day's API allowance drains over a few days (SPEC §2
``api_usage_limit_percent``, §3 "Delivery").

Each "day" the org allows 20 API calls; the target stops cleanly at the allowance (exit 3)
with the furthest STATE its landed calls allow, and the next day the tap resumes from that
bookmark. Before STATE followed landed calls, a stop within the first minute emitted no STATE,
and every day re-sent the same records.
"""

from __future__ import annotations

import itertools
import json

from _reliability import assert_org_matches, expected_contacts, no_traceback
from conftest import PROFILE_SCHEMA, SEGMENT_FIELDS, base_config, profile, run_target, seed_contacts

from target_salesforce_crm.emulator import Emulator

TOTAL = 10_000
CALLS_PER_DAY = 20
BATCH = 200
STATE_EVERY = 200
LIMIT_EXIT_CODE = 3


def _tap_output(records: list[dict], offset: int) -> str:
    """What the tap sends when its bookmark is ``offset``: the records after it, with a
    bookmark STATE every 200 records."""
    lines = [json.dumps({"type": "SCHEMA", "stream": "contacts", "schema": PROFILE_SCHEMA,
                         "key_properties": []})]
    for index in range(offset, len(records)):
        lines.append(json.dumps({"type": "RECORD", "stream": "contacts",
                                 "record": records[index]}))
        if (index + 1) % STATE_EVERY == 0 or index + 1 == len(records):
            lines.append(json.dumps({"type": "STATE", "value": {
                "bookmarks": {"contacts": {"offset": index + 1}}}}))
    return "\n".join(lines) + "\n"


def test_a_backlog_drains_over_days_each_record_sent_at_most_twice(tmp_path):
    emu = Emulator(segment_fields=SEGMENT_FIELDS, daily_api_limit=CALLS_PER_DAY).start()
    try:
        ids = seed_contacts(emu, TOTAL)
        records = [profile(i, n, seg_loyal="realized") for n, i in enumerate(ids)]
        offset = 0
        days: list[tuple[int, int, int]] = []  # (bookmark at start, records sent, exit code)
        while offset < TOTAL:
            assert len(days) < 4, f"the backlog is not draining: {days}"
            emu.reset_usage()  # a new day
            sent_before = emu.stats()["collections_records"]
            directory = tmp_path / f"day{len(days) + 1}"
            directory.mkdir()
            # collections only: with write_api auto a small allowance sends the rest through
            # Bulk API 2.0 (tests/test_bulk_accounting.py); this tests the STATE rule
            config = base_config(emu, directory, batch_size=BATCH, max_concurrency=2,
                                 api_usage_limit_percent=100, write_api="collections")
            run = run_target(config, _tap_output(records, offset), directory)
            days.append((offset, emu.stats()["collections_records"] - sent_before,
                         run.returncode))

            assert run.returncode in (0, LIMIT_EXIT_CODE), run.stderr[-3000:]
            assert no_traceback(run.stderr)
            assert run.rejected == []
            assert run.states, f"day {len(days)} emitted no STATE"
            new_offset = run.states[-1]["bookmarks"]["contacts"]["offset"]
            assert new_offset > offset, f"day {len(days)} did not move the bookmark"
            if run.returncode == 0:
                assert new_offset == TOTAL
            else:
                assert emu.stats()["api_usage"] <= CALLS_PER_DAY  # never past the allowance
            offset = new_offset

        # 19 calls of 200 a day (the describe takes the 20th): three days, maybe a fourth
        assert 3 <= len(days) <= 4, days
        assert_org_matches(emu, expected_contacts(records))
        sent = emu.stats()["collections_records"]
        assert sent <= 2 * TOTAL, days
        # a day re-sends at most the calls in flight when it stopped, past its last STATE
        for (start, count, _), (next_start, _, _) in itertools.pairwise(days):
            resent = start + count - next_start
            assert 0 <= resent <= 2 * BATCH, days
    finally:
        emu.stop()
