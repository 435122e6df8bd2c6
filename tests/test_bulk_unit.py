"""Fast in-process tests of the Bulk API 2.0 path: settings, CSV spool, result matching, client."""

from __future__ import annotations

import codecs
import csv
import datetime
import decimal
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from target_salesforce_crm.bulk_delivery import MAX_HELD_RECORDS, BulkDelivery
from target_salesforce_crm.deadletter import DeadLetter
from target_salesforce_crm.delivery import Chunk, Dispatcher, Entry
from target_salesforce_crm.rejections import Rejector, Source
from target_salesforce_crm.salesforce.bulk import (
    BulkIngest,
    JobInfo,
    csv_line,
    parse_error,
    read_csv,
)
from target_salesforce_crm.salesforce.client import ApiUsage, CallCounts
from target_salesforce_crm.salesforce.errors import BulkJobTimedOut
from target_salesforce_crm.salesforce.ids import normalize_id
from target_salesforce_crm.settings import SettingsError, parse_settings
from target_salesforce_crm.spool import (
    Spool,
    SpooledEntry,
    bulk_expressible,
    row_content,
    to_cell,
)
from target_salesforce_crm.stats import RunStats

BASE: dict[str, Any] = {
    "login_url": "http://127.0.0.1:1",
    "username": "u@example.com",
    "password": "p",
    "client_id": "c",
    "client_secret": "s",
}


# --------------------------------------------------------------------------- settings


def test_bulk_settings_defaults() -> None:
    settings = parse_settings(dict(BASE))
    assert (settings.write_api, settings.bulk_threshold, settings.bulk_job_timeout_s) == (
        "auto", 10_000, 3600)


def test_bulk_settings_given() -> None:
    settings = parse_settings(
        {**BASE, "write_api": "bulk", "bulk_threshold": 5, "bulk_job_timeout_s": 60})
    assert (settings.write_api, settings.bulk_threshold, settings.bulk_job_timeout_s) == (
        "bulk", 5, 60)


@pytest.mark.parametrize(
    ("override", "named"),
    [({"write_api": "soap"}, "write_api"), ({"bulk_threshold": 0}, "bulk_threshold"),
     ({"bulk_job_timeout_s": 0}, "bulk_job_timeout_s"),
     ({"write_api": "bulk", "api_version": "40.0"}, "api_version")],
)
def test_bad_bulk_settings_are_refused(override: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings({**BASE, **override})
    assert len(caught.value.problems) == 1
    assert named in caught.value.problems[0]


# --------------------------------------------------------------------------- CSV and spool


def read_back(path: Path) -> list[list[str]]:
    """The CSV as a strict reader (and so Salesforce) parses it."""
    data = path.read_bytes()
    assert not data.startswith(codecs.BOM_UTF8)
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle, strict=True))


def entry(key: str, stream: str = "s", **fields: Any) -> SpooledEntry:
    payload = {"attributes": {"type": "Contact"}, "id": key, **fields}
    return SpooledEntry(key, payload, [(stream, {"crmID": key})])


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    store = Spool("Id", directory=str(tmp_path))
    try:
        yield store
    finally:
        store.close()


def test_csv_line_quotes_every_field_and_keeps_separators_inside() -> None:
    line = csv_line(['a,b', 'say "hi"', "two\r\nlines", "lf\nonly", "cr\ronly", ""])
    assert line == ('"a,b","say ""hi""","two\r\nlines","lf\nonly","cr\ronly",""\r\n')
    assert next(csv.reader(io.StringIO(line, newline=""))) == [
        'a,b', 'say "hi"', "two\r\nlines", "lf\nonly", "cr\ronly", ""]


@pytest.mark.parametrize(
    ("value", "cell"),
    [(None, ""), ("", "#N/A"), ("x", "x"), (True, "true"), (False, "false"), (7, "7"),
     (1.25, "1.25"), ("2026-11-03", "2026-11-03"),
     ("2026-11-03T09:10:00+01:00", "2026-11-03T09:10:00+01:00")],
)
def test_cells_carry_what_collections_would(value: Any, cell: str) -> None:
    assert to_cell(value) == cell


@pytest.mark.parametrize("text", ["#N/A", "#n/a", " #N/A "])
def test_the_null_marker_text_cannot_go_through_bulk(text: str) -> None:
    assert not bulk_expressible({"FirstName": text})
    assert bulk_expressible({"FirstName": "N/A", "LastName": "#N/A!"})


def test_written_csv_has_the_union_of_columns_and_every_value(spool: Spool, tmp_path: Path
                                                              ) -> None:
    spool.put_many([entry("003A", FirstName="Ann"),
                    entry("003B", LastName='Quote "q", comma', Email=""),
                    entry("003C", Description="line1\r\nline2\nline3 🙂")])
    path = tmp_path / "job.csv"
    assert spool.write_csv(path, ["s"]) == 3
    rows = read_back(path)
    assert rows[0] == ["Id", "FirstName", "LastName", "Email", "Description"]
    assert rows[1:] == [
        ["003A", "Ann", "", "", ""],
        ["003B", "", 'Quote "q", comma', "#N/A", ""],
        ["003C", "", "", "", "line1\r\nline2\nline3 🙂"],
    ]
    assert path.read_bytes().count(b"\r\n") == 5  # 4 line ends + the one inside a value
    assert spool.csv_bytes == path.stat().st_size


def test_size_forecast_is_exact_and_an_upper_bound_before_adding(spool: Spool, tmp_path: Path
                                                                 ) -> None:
    first = [entry("003A", FirstName="é" * 3), entry("003B", LastName='"x"')]
    payloads = [e.payload for e in first]
    forecast = spool.csv_bytes_with([row_content(p) for p in payloads], payloads)
    spool.put_many(first)
    assert forecast == spool.csv_bytes
    spool.put_many([entry("003A", Title="t")])  # a merge replaces the row
    path = tmp_path / "job.csv"
    spool.write_csv(path, ["s"])
    assert spool.csv_bytes == path.stat().st_size


def test_a_key_is_spooled_once_and_found_again(spool: Spool) -> None:
    spool.put_many([entry("003A", FirstName="Ann"), entry("003B", FirstName="Bob")])
    merged = spool.get_many(["003A", "003Z"])
    assert list(merged) == ["003A"]
    old = merged["003A"]
    old.payload.update(LastName="Lee")
    old.records.append(("t", {"crmID": "003A", "n": 2}))
    spool.put_many([old])
    assert len(spool) == 2
    assert spool.streams == {"s": 1, "t": 1}
    again = spool.get_many(["003A"])["003A"]
    assert again.payload["FirstName"] == "Ann" and again.payload["LastName"] == "Lee"
    assert [stream for stream, _ in again.records] == ["s", "t"]


def test_take_hands_out_one_stream_and_leaves_the_rest(spool: Spool) -> None:
    spool.put_many([entry(f"003{n:03d}", "a" if n % 2 else "b", FirstName=str(n))
                    for n in range(25)])
    taken = list(spool.take(["a"], batch=4))
    assert [e.key for e in taken] == [f"003{n:03d}" for n in range(1, 25, 2)]
    assert len(spool) == 13 and spool.streams["a"] == 0
    removed = spool.remove(["003000", "003999"])
    assert [e.key for e in removed] == ["003000"] and len(spool) == 12


def test_records_come_back_with_their_python_types(spool: Spool) -> None:
    record = {"crmID": "003A", "when": datetime.datetime(2026, 1, 2, 3, 4, tzinfo=datetime.UTC),
              "score": decimal.Decimal("1.50")}
    spool.put_many([SpooledEntry("003A", {"id": "003A"}, [("s", record)])])
    assert spool.get_many(["003A"])["003A"].records == [("s", record)]


# --------------------------------------------------------------------------- wire format


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--",
      ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ())),
     ("STRING_TOO_LONG:Last Name: data value too large: x:LastName --",
      ("STRING_TOO_LONG", "Last Name: data value too large: x", ("LastName",))),
     ("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName, Company]:LastName,Company"
      " -- DUPLICATE_VALUE:dup:--",
      ("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName, Company]",
       ("LastName", "Company"))),
     ("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--",
      ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record", ())),
     ("ENTITY_IS_DELETED:entity is deleted", ("ENTITY_IS_DELETED", "entity is deleted", ())),
     ("something odd", ("UNKNOWN_ERROR", "something odd", ()))],
)
def test_sf_error_cells_are_split_into_code_message_and_fields(text: str, parsed: tuple) -> None:
    assert parse_error(text) == parsed


def test_result_sets_are_read_with_values_spanning_lines() -> None:
    data = (b'"sf__Id","sf__Error",Id,Description\r\n'
            b'"","INVALID_FIELD:bad:--","003A","a\r\nb, ""c"""\r\n')
    header, rows = read_csv(data)
    assert header == ["sf__Id", "sf__Error", "Id", "Description"]
    assert list(rows) == [["", "INVALID_FIELD:bad:--", "003A", 'a\r\nb, "c"']]


def test_job_info_reads_the_counters() -> None:
    info = JobInfo.from_answer({"id": "750A", "state": "Failed", "numberRecordsProcessed": 4,
                                "numberRecordsFailed": 1, "errorMessage": "boom"})
    assert (info.processed, info.failed, info.error_message, info.finished) == (4, 1, "boom", True)
    assert not JobInfo.from_answer({"id": "750A", "state": "InProgress"}).finished


class FakeClient:
    """Answers job polls from a script; records each request and the fake time."""

    def __init__(self, states: list[str]) -> None:
        self.states = states
        self.calls: list[tuple[str, str]] = []

    def call(self, method: str, path: str, body: Any = None, kind: str | None = None) -> Any:
        self.calls.append((method, path))
        return {"id": "750A", "state": self.states.pop(0)}


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_polls_with_a_growing_interval_until_the_job_ends() -> None:
    client, clock = FakeClient(["InProgress"] * 12 + ["JobComplete"]), FakeTime()
    bulk = BulkIngest(client, sleep=clock.sleep, clock=lambda: clock.now)  # type: ignore[arg-type]
    seen: list[str] = []
    info = bulk.wait("750A", 3600, on_poll=lambda i: seen.append(i.state))
    assert info.state == "JobComplete" and len(seen) == len(client.calls) == 13
    assert clock.sleeps[0] == 1.0 and max(clock.sleeps) == 30.0
    assert clock.sleeps == sorted(clock.sleeps)


def test_a_job_past_its_timeout_raises_after_a_last_poll() -> None:
    client, clock = FakeClient(["InProgress"] * 100), FakeTime()
    bulk = BulkIngest(client, sleep=clock.sleep, clock=lambda: clock.now)  # type: ignore[arg-type]
    with pytest.raises(BulkJobTimedOut, match="750A"):
        bulk.wait("750A", 10)
    assert clock.now == 10.0


# --------------------------------------------------------------------------- result accounting


class ScriptedBulk:
    """A Bulk API stand-in: keeps the uploaded CSV and answers each row as ``outcome`` says:
    ``("ok", created)``, ``("error", sf__Error)``, ``("unprocessed",)`` or ``("lost",)``."""

    def __init__(self, outcome: Callable[[dict[str, str]], tuple], echo: Callable[[str], str]
                 ) -> None:
        self.outcome = outcome
        self.echo = echo  # how the org echoes the key column (normalised)
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.upload_sizes: list[int] = []

    def processing(self, object_type: str) -> list[str]:
        return []

    def create(self, object_type: str, operation: str, external_id_field: str | None) -> JobInfo:
        return JobInfo("750A", "Open")

    def upload(self, job_id: str, path: Path) -> None:
        self.upload_sizes.append(path.stat().st_size)
        self.header, rows = read_csv(path.read_bytes())
        self.rows = list(rows)

    def close(self, job_id: str) -> JobInfo:
        return JobInfo("750A", "UploadComplete")

    def wait(self, job_id: str, timeout_s: float, on_poll: Any = None) -> JobInfo:
        return JobInfo("750A", "JobComplete", processed=len(self.rows))

    def results(self, job_id: str, kind: str, into: Path
                ) -> tuple[list[str], Iterator[list[str]]]:
        wanted = {"successfulResults": "ok", "failedResults": "error",
                  "unprocessedrecords": "unprocessed"}[kind]
        prefix = {"ok": ["sf__Id", "sf__Created"], "error": ["sf__Id", "sf__Error"],
                  "unprocessed": []}[wanted]
        out = []
        for row in reversed(self.rows):  # never in upload order
            values = dict(zip(self.header, row, strict=True))
            result = self.outcome(values)
            if result[0] == wanted:
                echoed = [self.echo(cell) if name == self.header[0] else cell
                          for name, cell in zip(self.header, row, strict=True)]
                out.append([*([values[self.header[0]], *result[1:]] if prefix else []), *echoed])
        return prefix + self.header, iter(out)


def delivery(tmp_path: Path, bulk: ScriptedBulk, *, external: str | None = None,
             case_sensitive: bool = False, max_job_bytes: int = 100 * 1024 * 1024,
             deliverer: Any = None) -> tuple[BulkDelivery, list[Chunk], Path, RunStats]:
    settings = parse_settings({**BASE, "write_api": "bulk", "batch_size": 2})
    stats = RunStats()
    dead_path = tmp_path / "dead.jsonl"
    rejector = Rejector(DeadLetter(str(dead_path)), stats)
    sent: list[Chunk] = []
    dispatcher = Dispatcher(1, sent.append)
    client = SimpleNamespace(counts=CallCounts(), usage=ApiUsage(90))
    bulk_delivery = BulkDelivery(settings, client, rejector, stats, dispatcher,  # type: ignore[arg-type]
                                 bulk=bulk, max_job_bytes=max_job_bytes,  # type: ignore[arg-type]
                                 deliverer=deliverer)
    spec = SimpleNamespace(case_sensitive=case_sensitive)
    mapper = SimpleNamespace(object_type="Contact",
                             external_id=SimpleNamespace(spec=spec) if external else None)
    source = Source("s", "Contact", stats.stream("s", "Contact"))
    bulk_delivery.register(source, mapper, ("Seg__c",), external)  # type: ignore[arg-type]
    return bulk_delivery, sent, dead_path, stats


def contact_ids(count: int) -> list[str]:
    return [normalize_id(f"003{n:012d}", "Contact")[0] or "" for n in range(count)]


def chunk_of(source_stats: Any, entries: list[Entry], external: str | None = None) -> Chunk:
    return Chunk(Source("s", "Contact", source_stats), ("Seg__c",), entries, external)


def test_results_are_matched_by_id_whatever_their_order_and_form(tmp_path: Path) -> None:
    ids = contact_ids(6)
    verdicts = {ids[0]: ("ok", "false"), ids[1]: ("ok", "false"), ids[2]: ("ok", "true"),
                ids[3]: ("error", "INVALID_FIELD:bad value for Title:Title --"),
                ids[4]: ("error", "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access:--"),
                ids[5]: ("lost",)}
    bulk = ScriptedBulk(lambda row: verdicts[row["Id"]], echo=lambda cell: cell[:15])
    lane, sent, dead_path, stats = delivery(tmp_path, bulk)
    stream = stats.stream("s", "Contact")
    entries = [Entry(i, {"attributes": {"type": "Contact"}, "id": i, "Title": f"T{n}",
                         "Seg__c": "realized"}, [(Source("s", "Contact", stream), {"n": n})])
               for n, i in enumerate(ids)]
    lane.send(chunk_of(stream, entries[:3]))
    lane.send(chunk_of(stream, entries[3:]))
    assert sent == []  # spooled, nothing sent before the barrier
    lane.land()
    lane.dispatcher.wait_idle()

    assert (stream.updated, stream.created, stream.retried) == (2, 1, 2)
    assert stats.segments["Seg__c"] == {"realized": 3}
    resent = sorted(entry.key for chunk in sent for entry in chunk.entries)
    assert resent == sorted([ids[4], ids[5]])
    lane.rejector.dead_letter.close()
    dead = [json.loads(line) for line in dead_path.read_text().splitlines()]
    assert [(d["id"], d["error_code"], d["fields"], d["origin"], d["record"]) for d in dead] == [
        (ids[3], "INVALID_FIELD", ["Title"], "salesforce", {"n": 3})]
    lane.close()


def test_upsert_results_match_an_external_id_echoed_in_another_case(tmp_path: Path) -> None:
    bulk = ScriptedBulk(lambda row: ("ok", "true"), echo=str.upper)
    lane, sent, _, stats = delivery(tmp_path, bulk, external="Ext__c")
    stream = stats.stream("s", "Contact")
    entries = [Entry(f"ab-{n}", {"attributes": {"type": "Contact"}, "Ext__c": f"Ab-{n}"},
                     [(Source("s", "Contact", stream), {"n": n})]) for n in range(3)]
    lane.send(chunk_of(stream, entries, "Ext__c"))
    lane.land()
    assert (stream.created, stream.retried, sent) == (3, 0, [])
    assert bulk.header == ["Ext__c"]
    lane.close()


def test_a_later_value_for_a_spooled_key_is_merged_and_a_marker_goes_by_collections(
        tmp_path: Path) -> None:
    ids = contact_ids(2)
    bulk = ScriptedBulk(lambda row: ("ok", "false"), echo=lambda cell: cell)
    lane, sent, _, stats = delivery(tmp_path, bulk)
    stream = stats.stream("s", "Contact")
    source = Source("s", "Contact", stream)
    lane.send(chunk_of(stream, [Entry(ids[0], {"id": ids[0], "Title": "a"}, [(source, {})]),
                                Entry(ids[1], {"id": ids[1], "Title": "b"}, [(source, {})])]))
    lane.send(chunk_of(stream, [Entry(ids[0], {"id": ids[0], "FirstName": "F"}, [(source, {})]),
                                Entry(ids[1], {"id": ids[1], "FirstName": "#N/A"},
                                      [(source, {})])]))
    lane.dispatcher.wait_idle()
    assert [(e.key, e.payload) for c in sent for e in c.entries] == [
        (ids[1], {"id": ids[1], "Title": "b", "FirstName": "#N/A"})]
    lane.land()
    assert bulk.header == ["Id", "Title", "FirstName"]
    assert bulk.rows == [[ids[0], "a", "F"]]
    assert stream.merged == 2 and stream.updated == 1
    lane.close()


def test_auto_goes_by_bulk_when_the_api_allowance_cannot_cover_collections(tmp_path: Path
                                                                           ) -> None:
    bulk = ScriptedBulk(lambda row: ("ok", "false"), echo=lambda cell: cell)
    lane, sent, _, stats = delivery(tmp_path, bulk)
    lane.settings = parse_settings({**BASE, "batch_size": 2, "api_usage_limit_percent": 50})
    stream = stats.stream("s", "Contact")
    only = lane._lanes["s"]  # the stream's lane, made an auto lane below
    only.bulk = False
    lane.client.usage.limit_percent = 50
    source = Source("s", "Contact", stream)
    ids = contact_ids(6)

    def send(keys: list[str], used: int) -> None:
        lane.client.usage.settle(f"api-usage={used}/100")
        lane.send(chunk_of(stream, [Entry(i, {"id": i}, [(source, {})]) for i in keys]),
                  waiting=30)  # 32 entries pending: 16 calls of 2
        lane.dispatcher.wait_idle()

    send(ids[:2], used=15)  # 35 calls left: collections can do it and still pay for a job
    assert (len(sent), only.bulk) == (1, False)
    send(ids[2:4], used=45)  # 5 left: too few even for a job, collections land what they can
    assert (len(sent), only.bulk) == (2, False)
    lane.client.usage.used = 30  # 20 left: not enough for collections, enough for one job
    send(ids[4:], used=30)
    assert (len(sent), only.bulk, stream.transport) == (2, True, "bulk")
    lane.close()


def test_a_spool_past_the_job_size_is_sent_before_it_grows_further(tmp_path: Path) -> None:
    bulk = ScriptedBulk(lambda row: ("ok", "false"), echo=lambda cell: cell)
    lane, sent, _, stats = delivery(tmp_path, bulk, max_job_bytes=400)
    stream = stats.stream("s", "Contact")
    source = Source("s", "Contact", stream)
    ids = contact_ids(12)
    for start in range(0, 12, 2):
        lane.send(chunk_of(stream, [Entry(i, {"id": i, "Title": "t" * 40}, [(source, {})])
                                    for i in ids[start:start + 2]]))
    lane.land()
    assert len(bulk.upload_sizes) > 2 and max(bulk.upload_sizes) <= 400
    assert (stream.updated, sent) == (12, [])
    assert stream.bulk_jobs == len(bulk.upload_sizes)
    lane.close()


class Recorder:
    """Stands in for the redirector and the campaign sync: records what they were handed."""

    def __init__(self) -> None:
        self.held: list[tuple[str, str]] = []
        self.synced: list[tuple[str, str, dict]] = []

    def wants(self, code: str, chunk: Chunk, entry: Entry) -> bool:
        return code == "ENTITY_IS_DELETED"

    def hold(self, chunk: Chunk, entry: Entry, code: str, message: str) -> None:
        self.held.append((entry.key, code))

    def ready(self, *, flush: bool) -> list[Chunk]:
        return []  # resolving the moves is the redirector's business, tested on its own

    def sync(self, chunk: Chunk, landed: list[tuple[Entry, str]],
             then: Callable[[set[str]], None]) -> None:
        self.synced.extend((entry.key, record_id, entry.memberships or {})
                           for entry, record_id in landed)
        then(set())  # no membership failed


def test_moved_rows_are_held_for_redirect_and_memberships_synced(tmp_path: Path) -> None:
    ids = contact_ids(3)
    verdicts = {ids[0]: ("ok", "false"), ids[1]: ("ok", "false"),
                ids[2]: ("error", "ENTITY_IS_DELETED:entity is deleted:--")}
    recorder = Recorder()
    bulk = ScriptedBulk(lambda row: verdicts[row["Id"]], echo=lambda cell: cell)
    lane, sent, _, stats = delivery(
        tmp_path, bulk, deliverer=SimpleNamespace(redirector=recorder, campaigns=recorder,
                                                  ledger=None))
    stream = stats.stream("s", "Contact")
    source = Source("s", "Contact", stream)
    lane.send(chunk_of(stream, [Entry(ids[0], {"id": ids[0]}, [(source, {})],
                                      memberships={"seg-a": "realized"}),
                                Entry(ids[1], {"id": ids[1]}, [(source, {})]),
                                Entry(ids[2], {"id": ids[2]}, [(source, {})])]))
    lane.land()
    assert recorder.held == [(ids[2], "ENTITY_IS_DELETED")]
    assert recorder.synced == [(ids[0], ids[0], {"seg-a": "realized"})]
    assert (stream.updated, stream.rejected, sent) == (2, 0, [])
    lane.close()


@pytest.mark.parametrize(("overrides", "held"), [
    ({"write_api": "auto"}, 10_000),
    ({"write_api": "auto", "bulk_threshold": 2_500}, 2_500),
    ({"write_api": "auto", "bulk_threshold": MAX_HELD_RECORDS + 1}, 0),  # memory: no hold
    ({"write_api": "auto", "api_version": "40.0"}, 0),  # no Bulk API 2.0 before 41.0
    ({"write_api": "collections"}, 0),
    ({"write_api": "bulk"}, 0),  # spooled from the first record anyway
])
def test_auto_holds_a_new_stream_up_to_bulk_threshold(overrides: dict[str, Any], held: int
                                                       ) -> None:
    settings = parse_settings({**BASE, **overrides})
    stats = RunStats()
    client = SimpleNamespace(counts=CallCounts(), usage=ApiUsage(90))
    routing = BulkDelivery(settings, client, None, stats,  # type: ignore[arg-type]
                           Dispatcher(1, lambda chunk: None))
    mapper = SimpleNamespace(object_type="Contact", external_id=None)
    source = Source("s", "Contact", stats.stream("s", "Contact"))
    routing.register(source, mapper, ("Seg__c",), None)  # type: ignore[arg-type]
    assert routing.hold_size("s") == held
    routing.send(chunk_of(source.stats, [Entry(f"003{n:015d}", {"LastName": "x"},
                                               [(source, {"n": n})]) for n in range(2)]))
    routing.dispatcher.wait_idle()
    routing.close()
    assert routing.hold_size("s") == 0  # once anything of the stream went out, no more hold
