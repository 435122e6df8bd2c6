"""Campaign membership writes pooled across chunks (issue 13's target: membership writes
⌈changed members / 200⌉ plus one query per chunk), and the promise that still holds: a STATE
covers a record only once its membership writes landed too."""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from _reliability import LiveRun, message_lines
from conftest import CREDENTIALS, profile, run_target, seed_contacts, singer_lines

from target_salesforce_crm.campaign_sync import CampaignSync
from target_salesforce_crm.chunks import Chunk, Entry
from target_salesforce_crm.deadletter import DeadLetter
from target_salesforce_crm.delivery import Dispatcher
from target_salesforce_crm.emulator import Emulator
from target_salesforce_crm.rejections import Rejector, Source
from target_salesforce_crm.salesforce.campaigns import Campaign
from target_salesforce_crm.stats import RunStats

STATUSES = ("realized", "existing", "exited")
SEGMENTS = ("seg-a", "seg-b")


def _seed_campaigns(emu: Emulator) -> dict[str, str]:
    """One campaign per segment, each with every status label: segment id → campaign Id."""
    campaigns = {}
    for segment in SEGMENTS:
        [campaign] = emu.seed("Campaign", [{"Name": f"Pool {segment}", "IsActive": True}])
        emu.seed("CampaignMemberStatus", [{"CampaignId": campaign, "Label": label,
                                           "SortOrder": 10 + n}
                                          for n, label in enumerate(STATUSES)])
        campaigns[segment] = campaign
    return campaigns


def _config(emu: Emulator, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"login_url": emu.url, **CREDENTIALS, "segment_model": "campaign",
            "segment_mappings": [{"segment_id": s, "mapping_id": f"Pool {s}"} for s in SEGMENTS],
            "rejected_records_path": str(tmp_path / "rejected.jsonl"),
            "run_report_path": str(tmp_path / "report.json"), **extra}


def _statuses(count: int, changed_every: int = 0) -> list[dict[str, str]]:
    """Per profile, segment → status; with ``changed_every``, every such profile's seg-a
    status moves on by one."""
    wanted = []
    for n in range(count):
        moved = 1 if changed_every and n % changed_every == 0 else 0
        wanted.append({"seg-a": STATUSES[(n + moved) % 3], "seg-b": STATUSES[(n + 1) % 3]})
    return wanted


def _records(ids: list[str], statuses: list[dict[str, str]]) -> list[dict]:
    return [profile(record_id, n, **{seg.replace("-", "_"): status
                                     for seg, status in statuses[n].items()})
            for n, record_id in enumerate(ids)]


def _members(emu: Emulator, campaigns: dict[str, str]) -> dict[tuple[str, str], str]:
    segment_of = {campaign: segment for segment, campaign in campaigns.items()}
    return {(m["ContactId"], segment_of[m["CampaignId"]]): m["Status"]
            for m in emu.records("CampaignMember")}


def _expected(ids: list[str], statuses: list[dict[str, str]]) -> dict[tuple[str, str], str]:
    return {(record_id, segment): status
            for record_id, wanted in zip(ids, statuses, strict=True)
            for segment, status in wanted.items()}


@pytest.mark.parametrize("write_api", ["collections", "bulk"])
def test_membership_writes_are_pooled_200_per_call_across_chunks(write_api, emulator, tmp_path):
    count, batch_size = 450, 50
    ids = seed_contacts(emulator, count)
    campaigns = _seed_campaigns(emulator)
    config = _config(emulator, tmp_path, batch_size=batch_size, write_api=write_api)
    first = _statuses(count)
    run = run_target(config, singer_lines("contacts", _records(ids, first)), tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.rejected == []
    assert _members(emulator, campaigns) == _expected(ids, first)
    calls = run.report["campaign_members"]["calls"]
    # one query per chunk of Contacts (per 200 rows of a Bulk job's results), then
    # 900 creates in ceil(900 / 200) calls, whatever chunk each came from
    people_per_query = batch_size if write_api == "collections" else 200
    assert calls["membership_queries"] == math.ceil(count / people_per_query)
    assert calls["membership_writes"] == math.ceil(2 * count / 200)

    changed = _statuses(count, changed_every=2)  # 225 status changes, 4 or 5 per chunk
    again = run_target(config, singer_lines("contacts", _records(ids, changed)), tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.rejected == []
    assert _members(emulator, campaigns) == _expected(ids, changed)
    calls = again.report["campaign_members"]["calls"]
    assert calls["membership_writes"] == math.ceil(225 / 200)
    loyal = again.report["campaign_members"]["segments"]["seg-a"]
    assert (loyal["created"], loyal["updated"]) == (0, 225)
    assert sum(loyal["statuses"].values()) == count


def test_a_state_covers_a_record_only_once_its_pooled_memberships_landed(tmp_path):
    """Only every 10th of the last 500 profiles has campaign statuses: 100 creates, fewer than
    a call's 200, so they wait in the pool until the end. The CLI is killed (SIGKILL) once it
    printed a STATE past the 700th profile: every profile that STATE covers has its campaign
    members in the org, so such a STATE can only have come after the pool was written."""
    count = 1000
    with Emulator(latency_ms=10) as emu:
        ids = seed_contacts(emu, count)
        campaigns = _seed_campaigns(emu)
        statuses = [wanted if n >= 500 and n % 10 == 0 else {}
                    for n, wanted in enumerate(_statuses(count))]
        # collections: auto would hold the stream's first records for a few seconds
        config = _config(emu, tmp_path, batch_size=25, max_concurrency=2,
                         write_api="collections")
        lines = message_lines(singer_lines("contacts", _records(ids, statuses),
                                           state_every=25))
        live = LiveRun(config, tmp_path, lines, lines_per_tick=10, tick_seconds=0.04)
        live.wait_until(lambda: any(state["offset"] > 700 for state in live.states))
        live.signal(signal.SIGKILL)
        assert live.finish() in (0, -signal.SIGKILL), live.stderr[-2000:]
        covered = max(state["offset"] for state in live.states)
        held = _members(emu, campaigns)
        missing = [(n, segment) for n in range(covered) for segment in statuses[n]
                   if held.get((ids[n], segment)) != statuses[n][segment]]
        assert missing == []
        assert len(held) == 100
        # before the pool was written, STATE still followed the chunks that had nothing pooled
        assert 500 in [state["offset"] for state in live.states], live.states


def _chunk(source: Source, key: str) -> Chunk:
    return Chunk(source=source, segment_fields=(), entries=[Entry(key, {"Id": key})])


def test_a_deferred_chunk_holds_state_and_its_keys_until_released():
    source = Source("s", "Contact", RunStats().stream("s", "Contact"))
    releases: list[Any] = []
    flushed = threading.Event()

    def deliver(chunk: Chunk) -> None:
        if chunk.entries[0].key == "pooled":
            releases.append(dispatcher.defer())

    def flush() -> None:  # what the campaign pool does at a barrier
        flushed.set()
        while releases:
            releases.pop()()

    dispatcher = Dispatcher(2, deliver)
    try:
        dispatcher.submit(_chunk(source, "plain"))
        dispatcher.submit(_chunk(source, "pooled"))
        dispatcher.submit(_chunk(source, "later"))
        with dispatcher._cond:  # the three calls ended; the pooled chunk is still open
            while dispatcher._submitted:
                dispatcher._cond.wait()
        assert dispatcher.done_through() == 1
        assert dispatcher.in_flight("Contact", ["pooled", "later"]) == {"pooled"}

        dispatcher.on_idle = flush
        dispatcher.submit(_chunk(source, "pooled"))  # its key waits on the pool: flushed
        assert flushed.is_set()
        dispatcher.wait_idle()  # the barrier writes the pool (this chunk's writes) too
        assert releases == []
        assert dispatcher.done_through() == dispatcher.last_number == 4
    finally:
        dispatcher.shutdown()


class _RacingOrg:
    """A client stand-in: two members appear after the chunk's query (someone else added
    them), so their creates are refused with DUPLICATE_VALUE; one holds the wanted status
    already, the other does not."""

    def __init__(self) -> None:
        self.queries = 0
        self.updates: list[dict] = []

    def query(self, soql: str) -> list[dict]:
        self.queries += 1
        if self.queries == 1:
            return []
        return [{"Id": "00v000000000001AAA", "CampaignId": "701A", "ContactId": "003A",
                 "Status": "realized"},
                {"Id": "00v000000000002AAA", "CampaignId": "701A", "ContactId": "003B",
                 "Status": "Sent"}]

    def collections_create(self, records: list[dict]) -> list[dict]:
        return [{"success": False, "errors": [{"statusCode": "DUPLICATE_VALUE",
                                               "message": "Already a campaign member."}]}
                for _ in records]

    def collections_update(self, records: list[dict]) -> list[dict]:
        self.updates.extend(records)
        return [{"success": True} for _ in records]


def test_a_member_added_after_the_query_is_updated_not_dead_lettered(tmp_path):
    stats = RunStats()
    source = Source("s", "Contact", stats.stream("s", "Contact"))
    org = _RacingOrg()
    dead_letter = DeadLetter(str(tmp_path / "rejected.jsonl"))
    sync = CampaignSync(org, Rejector(dead_letter, stats),  # type: ignore[arg-type]
                        campaigns={"seg-a": Campaign("701A", "A", frozenset(STATUSES))},
                        status_values={}, remove_on_exit=False)
    entries = [Entry(key, {"Id": key}, [(source, {})], memberships={"seg-a": "realized"})
               for key in ("003A", "003B")]
    failed: list[set[str]] = []
    sync.sync(Chunk(source=source, segment_fields=(), entries=entries),
              [(entry, entry.key) for entry in entries], then=failed.append)
    assert failed == []  # pooled: fewer than 200 writes
    sync.flush()
    dead_letter.close()
    assert failed == [set()]
    assert org.updates == [{"attributes": {"type": "CampaignMember"},
                            "id": "00v000000000002AAA", "Status": "realized"}]
    counts = sync.report()["segments"]["seg-a"]
    assert (counts["created"], counts["updated"], counts["statuses"]) == (0, 1, {"realized": 2})
    assert not (tmp_path / "rejected.jsonl").exists() or \
        (tmp_path / "rejected.jsonl").read_text() == ""
