"""The sync ledger against real SQLite files and a real PostgreSQL server (pg_server.py)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pg_server import PostgresServer

from target_salesforce_crm.ledger import (
    DEFAULT_LEDGER_URL,
    Ledger,
    LedgerError,
    LedgerUnavailable,
    config_fingerprint,
    external_id_key,
    org_id_from_identity_url,
    salesforce_id_key,
)

ORG = "00D000000000001AAA"
OTHER_ORG = "00D000000000002AAA"
FIELDS = ("LastName", "Email", "Seg_Loyal__c")
FINGERPRINTS = {name: config_fingerprint("Contact", name, f"source.{name}") for name in FIELDS}


def contact(n: int, **changes: Any) -> dict[str, Any]:
    return {"LastName": f"Name{n}", "Email": f"p{n}@example.org", "Seg_Loyal__c": "Active",
            **changes}


def chunk(first: int, count: int, **changes: Any) -> dict[str, dict[str, Any]]:
    return {f"key{n:06d}": contact(n, **changes) for n in range(first, first + count)}


def land(ledger: Ledger, payloads: dict[str, dict[str, Any]], *, object_type: str = "Contact",
         org: str = ORG, fingerprints: dict[str, str] = FINGERPRINTS) -> dict[str, dict]:
    """Diff, then record every key as if Salesforce accepted all; returns what was sent."""
    changes = ledger.diff(org, object_type, payloads, fingerprints)
    ledger.record(changes, [key for key, fields in changes.payloads.items() if fields])
    return changes.payloads


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:60]
    return server.create_database(name)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger.open(ledger_url, on_warning=lambda _message: None) as opened:
        yield opened


def test_a_new_ledger_sends_everything_then_nothing(ledger: Ledger) -> None:
    payloads = chunk(0, 50)
    assert land(ledger, payloads) == payloads
    assert land(ledger, payloads) == {key: {} for key in payloads}


def test_a_changed_record_sends_only_its_changed_fields(ledger: Ledger) -> None:
    land(ledger, chunk(0, 10))
    changed = chunk(0, 10)
    changed["key000003"]["Email"] = "new@example.org"
    changed["key000007"]["Seg_Loyal__c"] = None
    sent = land(ledger, changed)
    assert sent["key000003"] == {"Email": "new@example.org"}
    assert sent["key000007"] == {"Seg_Loyal__c": None}
    assert sum(1 for fields in sent.values() if fields) == 2
    assert land(ledger, changed) == {key: {} for key in changed}


def test_partial_updates_merge_into_the_entry(ledger: Ledger) -> None:
    land(ledger, chunk(0, 1))
    land(ledger, {"key000000": {"Email": "second@example.org"}})
    land(ledger, {"key000000": {"LastName": "Third"}})
    both = chunk(0, 1, Email="second@example.org", LastName="Third")
    assert land(ledger, both) == {"key000000": {}}
    assert land(ledger, chunk(0, 1)) == {
        "key000000": {"Email": "p0@example.org", "LastName": "Name0"}}


def test_none_and_absent_and_types_are_told_apart(ledger: Ledger) -> None:
    land(ledger, {"k": {"LastName": "1", "Email": None}})
    assert land(ledger, {"k": {"LastName": 1, "Email": None}}) == {"k": {"LastName": 1}}
    assert land(ledger, {"k": {"LastName": 1, "Email": ""}}) == {"k": {"Email": ""}}
    assert land(ledger, {"k": {"LastName": 1}}) == {"k": {}}


def test_a_config_change_invalidates_only_that_fields_entries(ledger: Ledger) -> None:
    payloads = chunk(0, 20)
    land(ledger, payloads)
    remapped = {**FINGERPRINTS, "Seg_Loyal__c": config_fingerprint("Contact", "Seg_Loyal__c",
                                                                   "translation-v2")}
    sent = land(ledger, payloads, fingerprints=remapped)
    assert sent == {key: {"Seg_Loyal__c": "Active"} for key in payloads}
    assert land(ledger, payloads, fingerprints=remapped) == {key: {} for key in payloads}


def test_objects_and_orgs_have_their_own_entries(ledger: Ledger) -> None:
    payloads = chunk(0, 5)
    land(ledger, payloads)
    assert land(ledger, payloads, object_type="Lead") == payloads
    assert land(ledger, payloads, org=OTHER_ORG) == payloads
    assert land(ledger, payloads) == {key: {} for key in payloads}


def test_a_rejected_record_is_not_recorded(ledger: Ledger) -> None:
    payloads = chunk(0, 4)
    changes = ledger.diff(ORG, "Contact", payloads, FINGERPRINTS)
    assert ledger.record(changes, ["key000000", "key000002"]) == 2  # 1 and 3 were rejected
    again = ledger.diff(ORG, "Contact", payloads, FINGERPRINTS).payloads
    assert again == {"key000000": {}, "key000001": payloads["key000001"],
                     "key000002": {}, "key000003": payloads["key000003"]}


def test_recording_a_key_outside_the_diff_is_refused(ledger: Ledger) -> None:
    changes = ledger.diff(ORG, "Contact", chunk(0, 2), FINGERPRINTS)
    with pytest.raises(KeyError, match="key000009"):
        ledger.record(changes, ["key000009"])


def test_full_resync_sends_everything_and_rewrites_the_entries(ledger: Ledger) -> None:
    land(ledger, chunk(0, 3))
    fewer = {key: {"LastName": fields["LastName"]} for key, fields in chunk(0, 3).items()}
    changes = ledger.diff(ORG, "Contact", fewer, FINGERPRINTS, full=True)
    assert changes.payloads == fewer
    ledger.record(changes, list(fewer))
    # The rewrite dropped the other fields' entries: they are sent again when mapped again.
    assert land(ledger, chunk(0, 3)) == {
        key: {"Email": fields["Email"], "Seg_Loyal__c": "Active"}
        for key, fields in chunk(0, 3).items()}


def test_15_and_18_character_ids_share_one_entry(ledger: Ledger) -> None:
    id18 = "003XX0000004DcMYAU"
    assert salesforce_id_key(id18[:15]) == id18
    assert salesforce_id_key(id18.lower()) == id18
    land(ledger, {salesforce_id_key(id18[:15]): contact(1)})
    assert land(ledger, {salesforce_id_key(id18.lower()): contact(1)}) == {id18: {}}


def test_external_ids_match_as_salesforce_matches_them(ledger: Ledger) -> None:
    insensitive = external_id_key("Email__c", "Ann@Example.org", case_sensitive=False)
    land(ledger, {insensitive: contact(1)})
    same = external_id_key("Email__c", "ann@EXAMPLE.ORG", case_sensitive=False)
    assert land(ledger, {same: contact(1)}) == {same: {}}
    sensitive = external_id_key("Ext__c", "AbC", case_sensitive=True)
    land(ledger, {sensitive: contact(1)})
    other_case = external_id_key("Ext__c", "abc", case_sensitive=True)
    assert land(ledger, {other_case: contact(1)}) == {other_case: contact(1)}
    other_field = external_id_key("Other__c", "Ann@Example.org", case_sensitive=False)
    assert land(ledger, {other_field: contact(1)}) == {other_field: contact(1)}


@pytest.mark.parametrize(
    "bad", ["003XX0000004Dc!", "003XX0000004DcMYAX", "003XX0000004DcMYA", "not-an-id", ""])
def test_malformed_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Salesforce Id"):
        salesforce_id_key(bad)


def test_the_org_id_comes_from_the_identity_url() -> None:
    url = "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P"
    assert org_id_from_identity_url(url) == salesforce_id_key("00Dx0000000BV7z")
    with pytest.raises(ValueError, match="identity URL"):
        org_id_from_identity_url("https://login.salesforce.com/services/oauth2/token")


def test_a_chunk_is_looked_up_in_one_query_and_recorded_in_one_transaction(
    ledger: Ledger,
) -> None:
    land(ledger, chunk(0, 100))
    payloads = chunk(50, 200, Email="changed@example.org")  # 100 known, 100 new
    statements: list[str] = []
    commits: list[object] = []

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    def on_commit(conn: Any) -> None:
        commits.append(conn)

    sa.event.listen(sa.Engine, "before_cursor_execute", on_statement)
    sa.event.listen(sa.Engine, "commit", on_commit)
    try:
        changes = ledger.diff(ORG, "Contact", payloads, FINGERPRINTS)
        reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(reads) == 1 and len(statements) == 1 and not commits
        statements.clear()
        assert ledger.record(changes, list(payloads)) == 200
        assert len(commits) == 1
        assert not [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", on_statement)
        sa.event.remove(sa.Engine, "commit", on_commit)


def test_a_chunk_among_many_entries_reads_only_its_own(tmp_path: Path) -> None:
    path = tmp_path / "big.sqlite"
    with Ledger.open(f"sqlite:///{path}", on_warning=lambda _m: None) as ledger:
        with sqlite3.connect(path) as db:  # 200,000 other entries, written directly for speed
            db.executemany(
                "INSERT INTO sync_ledger (record_key, org_id, object, record_hash, fields) "
                "VALUES (?, ?, 'Contact', 0, '{}')",
                ((f"other{n:07d}", ORG) for n in range(200_000)),
            )
        land(ledger, chunk(0, 200))
        probe = chunk(0, 200)
        probe["key000123"]["Email"] = "moved@example.org"
        tracemalloc.start()
        try:
            sent = ledger.diff(ORG, "Contact", probe, FINGERPRINTS).payloads
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert {key: fields for key, fields in sent.items() if fields} == {
        "key000123": {"Email": "moved@example.org"}}
    assert peak < 2_000_000  # 200,000 entries would take far more than this


def test_a_missing_ledger_file_means_one_full_send_and_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger.open(f"sqlite:///{path}", on_warning=lambda _m: None) as ledger:
        land(ledger, chunk(0, 5))
    path.unlink()
    warnings: list[str] = []
    with Ledger.open(f"sqlite:///{path}", on_warning=warnings.append) as ledger:
        assert ledger.warnings == warnings
        assert land(ledger, chunk(0, 5)) == chunk(0, 5)
        assert land(ledger, chunk(0, 5)) == {key: {} for key in chunk(0, 5)}
    assert len(warnings) == 1 and "did not exist" in warnings[0] and "in full" in warnings[0]


def test_the_default_ledger_lives_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Ledger.open(DEFAULT_LEDGER_URL, on_warning=lambda _m: None) as ledger:
        land(ledger, chunk(0, 1))
    assert (tmp_path / ".target-salesforce-crm" / "ledger.sqlite").is_file()


def test_a_garbage_ledger_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not a database" * 500)
    warnings: list[str] = []
    with Ledger.open(f"sqlite:///{path}", on_warning=warnings.append) as ledger:
        assert land(ledger, chunk(0, 5)) == chunk(0, 5)
        assert land(ledger, chunk(0, 5)) == {key: {} for key in chunk(0, 5)}
    aside = list(tmp_path.glob("ledger.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert len(warnings) == 1 and "corrupt" in warnings[0] and aside[0].name in warnings[0]


def test_a_ledger_damaged_inside_is_moved_aside_when_read(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger.open(f"sqlite:///{path}", on_warning=lambda _m: None) as ledger:
        land(ledger, chunk(0, 2_000))
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 20 * page
    data[8 * page:] = b"\xa5" * (len(data) - 8 * page)  # the schema pages stay readable
    path.write_bytes(bytes(data))
    warnings: list[str] = []
    with Ledger.open(f"sqlite:///{path}", on_warning=warnings.append) as ledger:
        assert not warnings  # found only when a chunk's rows are read
        assert land(ledger, chunk(0, 200)) == chunk(0, 200)
        assert land(ledger, chunk(0, 200)) == {key: {} for key in chunk(0, 200)}
    assert len(list(tmp_path.glob("ledger.sqlite.corrupt-*"))) == 1
    assert len(warnings) == 1 and "corrupt" in warnings[0]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "is not a SQLAlchemy URL"),
        ("mysql+pymysql://ledger:pa55word@127.0.0.1/ledger", "only sqlite"),
        ("postgresql+psycopg2://ledger:pa55word@127.0.0.1/ledger", "driver is not installed"),
        ("postgresql+psycopg://ledger:pa55word@127.0.0.1:1/ledger", "cannot be opened"),
    ],
)
def test_an_unopenable_ledger_is_a_clear_config_error(url: str, expected: str) -> None:
    with pytest.raises(LedgerUnavailable, match=expected) as raised:
        Ledger.open(url)
    assert "ledger_url" in str(raised.value)
    assert "pa55word" not in str(raised.value)
    if "pa55word" in url:
        assert "***" in str(raised.value)


def test_a_ledger_path_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(LedgerUnavailable, match=r"ledger_url .* cannot be opened"):
        Ledger.open(f"sqlite:///{blocker}/ledger.sqlite")


def test_a_refused_postgresql_password_is_a_config_error(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.url(password="wr0ng-secret")
    with pytest.raises(LedgerUnavailable, match="password authentication failed") as raised:
        Ledger.open(url)
    assert "wr0ng-secret" not in str(raised.value) and "ledger_url" in str(raised.value)


WRITER = textwrap.dedent(
    """
    import json, pathlib, sys, time
    from target_salesforce_crm.ledger import Ledger
    url, field, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    gate = pathlib.Path(sys.argv[5])
    fingerprints = {field: "fp-" + field}
    ledger = Ledger.open(url, on_warning=lambda _m: None)
    (gate.parent / ("ready-" + field)).touch()
    while not gate.exists():  # both start writing together, however loaded the machine
        time.sleep(0.01)
    started = time.time()
    for first in range(0, count, batch):
        payloads = {f"key{n:06d}": {field: f"{field}{n}"} for n in range(first, first + batch)}
        changes = ledger.diff("00D000000000001AAA", "Contact", payloads, fingerprints)
        ledger.record(changes, list(payloads))
    ledger.close()
    print(json.dumps({"done": count, "from": started, "to": time.time()}))
    """
)


def test_two_processes_write_one_ledger_at_once(ledger_url: str, tmp_path: Path) -> None:
    count, batch = 3_000, 25
    Ledger.open(ledger_url, on_warning=lambda _m: None).close()  # both find the tables
    gate = tmp_path / "go"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, ledger_url, field, str(count), str(batch),
                          str(gate)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "error"})
        for field in ("Alpha__c", "Beta__c")
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{f}").exists() for f in ("Alpha__c", "Beta__c")):
        assert time.monotonic() < deadline, "the writers did not open the ledger"
        time.sleep(0.01)
    gate.touch()
    spans = []
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        report = json.loads(out)
        assert report["done"] == count
        spans.append((report["from"], report["to"]))
    assert max(start for start, _ in spans) < min(end for _, end in spans)  # they overlapped
    both = {f"key{n:06d}": {"Alpha__c": f"Alpha__c{n}", "Beta__c": f"Beta__c{n}"}
            for n in range(count)}
    fingerprints = {"Alpha__c": "fp-Alpha__c", "Beta__c": "fp-Beta__c"}
    with Ledger.open(ledger_url, on_warning=lambda _m: None) as ledger:
        for first in range(0, count, 500):
            part = {key: both[key] for key in list(both)[first:first + 500]}
            assert ledger.diff(ORG, "Contact", part, fingerprints).payloads == {
                key: {} for key in part}


def test_a_dropped_postgresql_connection_is_replaced(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("dropped_connection")
    with Ledger.open(url, on_warning=lambda _m: None) as ledger:
        land(ledger, chunk(0, 10))
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            dropped = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).scalar()
        admin.dispose()
        assert dropped >= 1  # the ledger's pooled connection
        assert land(ledger, chunk(0, 10, Email="after@example.org")) == {
            key: {"Email": "after@example.org"} for key in chunk(0, 10)}


def test_keys_in_flight_are_sent_in_full_and_merged_when_recorded(ledger: Ledger) -> None:
    land(ledger, chunk(0, 2))
    changes = ledger.diff(ORG, "Contact", chunk(0, 2), FINGERPRINTS, in_flight={"key000001"})
    assert changes.payloads == {"key000000": {}, "key000001": contact(1)}
    ledger.record(changes, ["key000001"])
    land(ledger, {"key000001": {"Email": "later@example.org"}})
    assert land(ledger, chunk(0, 2, Email="later@example.org"))["key000001"] == {}


def test_a_read_only_ledger_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    warnings: list[str] = []
    with Ledger.open(f"sqlite:///{path}", on_warning=warnings.append, read_only=True) as ledger:
        assert ledger.diff(ORG, "Contact", chunk(0, 3), FINGERPRINTS).payloads == chunk(0, 3)
    assert not path.exists() and "does not exist" in warnings[0]

    with Ledger.open(f"sqlite:///{path}", on_warning=lambda _m: None) as ledger:
        land(ledger, chunk(0, 3))
    before = path.read_bytes()
    fewer = {key: {"LastName": fields["LastName"]} for key, fields in chunk(0, 3).items()}
    with Ledger.open(f"sqlite:///{path}", read_only=True) as ledger:
        changes = ledger.diff(ORG, "Contact", fewer, FINGERPRINTS)  # would refresh, read-write
        assert changes.payloads == {key: {} for key in fewer}
        with pytest.raises(LedgerError, match="read-only"):
            ledger.record(changes, [])
    assert path.read_bytes() == before


def test_a_read_only_ledger_leaves_a_corrupt_file_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not a database" * 500)
    warnings: list[str] = []
    with Ledger.open(f"sqlite:///{path}", on_warning=warnings.append, read_only=True) as ledger:
        assert ledger.diff(ORG, "Contact", chunk(0, 2), FINGERPRINTS).payloads == chunk(0, 2)
    assert path.read_bytes().startswith(b"this is not a database")
    assert not list(tmp_path.glob("*.corrupt-*")) and "corrupt" in warnings[0]
