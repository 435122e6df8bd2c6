"""The sync ledger in a run, in process: what is compared (campaign memberships, config
fingerprints), what the Deliverer syncs and records; and the emulator's record of what it
received, which the end-to-end tests (test_skip_unchanged.py) judge runs by."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CREDENTIALS, seed_contacts

from target_salesforce_crm.chunks import Chunk, Entry
from target_salesforce_crm.deadletter import DeadLetter
from target_salesforce_crm.delivery import Deliverer
from target_salesforce_crm.ledger import Ledger, salesforce_id_key
from target_salesforce_crm.ledger_sync import SyncLedger
from target_salesforce_crm.rejections import Rejector, Source
from target_salesforce_crm.settings import parse_settings
from target_salesforce_crm.stats import RunStats

ORG_URL = "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA"


class _Ledger:
    """A SyncLedger on a real SQLite ledger, and a chunk builder."""

    def __init__(self, path: Path, **config: Any) -> None:
        settings = parse_settings({"login_url": "http://127.0.0.1:1", "username": "u",
                                   "password": "p", "client_id": "c", "client_secret": "s",
                                   "skip_unchanged": True, **config})
        ledger = Ledger.open(f"sqlite:///{path}", on_warning=lambda _m: None)
        self.sync = SyncLedger(ledger, settings, lambda: ORG_URL)

    def land(self, entries: list[Entry]) -> dict[str, tuple[dict, dict | None]]:
        """Diff a batch, record every changed entry; entry key → (body, memberships)."""
        planned, _ = self.sync.diff("Contact", None, entries)
        if planned:
            plan = self.sync.pack(None, planned)
            self.sync.record(plan, [item.entry.key for item in planned])
        return {item.entry.key: (item.body, item.memberships) for item in planned}


def _person(key: str, last: str, memberships: dict[str, str] | None) -> Entry:
    return Entry(key, {"attributes": {"type": "Contact"}, "id": key, "LastName": last},
                 memberships=memberships)


CAMPAIGNS = {"segment_mappings": [{"segment_id": "s1", "mapping_id": "Spring", "model": "campaign"},
                                  {"segment_id": "s2", "mapping_id": "Fall", "model": "campaign"}]}


def test_campaign_memberships_are_compared_and_only_changed_ones_synced(tmp_path):
    ledger = _Ledger(tmp_path / "l.sqlite", **CAMPAIGNS)
    key = salesforce_id_key("003000000000001")
    first = ledger.land([_person(key, "Ann", {"s1": "realized", "s2": "existing"})])
    assert first[key][1] == {"s1": "realized", "s2": "existing"}
    assert ledger.land([_person(key, "Ann", {"s1": "realized", "s2": "existing"})]) == {}
    # a membership changed, the fields did not: the key only, and that membership only
    changed = ledger.land([_person(key, "Ann", {"s1": "exited", "s2": "existing"})])
    assert changed == {key: ({"attributes": {"type": "Contact"}, "id": key}, {"s1": "exited"})}
    # a field changed, the memberships did not: no membership to sync
    assert ledger.land([_person(key, "Bo", {"s1": "exited", "s2": "existing"})]) == {
        key: ({"attributes": {"type": "Contact"}, "id": key, "LastName": "Bo"}, None)}


def test_a_campaign_exit_policy_change_resyncs_the_memberships(tmp_path):
    key = salesforce_id_key("003000000000001")
    _Ledger(tmp_path / "l.sqlite", **CAMPAIGNS).land([_person(key, "Ann", {"s1": "exited"})])
    again = _Ledger(tmp_path / "l.sqlite", campaign_exit="delete", **CAMPAIGNS)
    assert again.land([_person(key, "Ann", {"s1": "exited"})]) == {
        key: ({"attributes": {"type": "Contact"}, "id": key}, {"s1": "exited"})}


@pytest.mark.parametrize(
    ("before", "after", "resent"),
    [
        ({}, {"segment_status_values": {"exited": "Left"}}, {"Seg_A__c"}),
        ({}, {"segment_membership_path": "memberships"}, {"Seg_A__c"}),
        ({}, {"segment_mappings": [{"segment_id": "other", "mapping_id": "Seg_A"}]},
         {"Seg_A__c"}),
        ({}, {"field_mappings": [{"source": "x.last", "target": "LastName"}]}, {"LastName"}),
        ({"segment_mappings": [{"segment_id": "a", "mapping_id": "Seg_A", "model": "checkbox"}]},
         {"segment_mappings": [{"segment_id": "a", "mapping_id": "Seg_A", "model": "checkbox"}],
          "segment_status_values": {"exited": "Left"}}, set()),
    ],
    ids=["translation", "membership_path", "segment_id", "source_path", "checkbox_ignores_"
         "translation"],
)
def test_a_config_change_resends_exactly_the_fields_it_touches(tmp_path, before, after, resent):
    base: dict[str, Any] = {"segment_mappings": [{"segment_id": "a", "mapping_id": "Seg_A"}],
                            "field_mappings": [{"source": "last", "target": "LastName"}]}
    key = salesforce_id_key("003000000000001")

    def entry() -> Entry:
        return Entry(key, {"attributes": {"type": "Contact"}, "id": key, "LastName": "Ann",
                           "Seg_A__c": "exited"})

    _Ledger(tmp_path / "l.sqlite", **{**base, **before}).land([entry()])
    sent = _Ledger(tmp_path / "l.sqlite", **{**base, **after}).land([entry()])
    assert set(sent.get(key, ({}, None))[0]) - {"attributes", "id"} == resent


def test_fingerprints_do_not_depend_on_the_case_of_a_field_name(tmp_path):
    ledger = _Ledger(tmp_path / "l.sqlite")
    fingerprint: Callable[[str, str], str] = ledger.sync._fingerprint
    assert fingerprint("Contact", "LastName") == fingerprint("Contact", "lastname")
    assert fingerprint("Contact", "LastName") != fingerprint("Lead", "LastName")


class _Client:
    """Answers every collections update with success and keeps the bodies it was sent."""

    def __init__(self) -> None:
        self.bodies: list[list[dict]] = []

    def collections_update(self, payloads: list[dict]) -> list[dict]:
        self.bodies.append(payloads)
        return [{"id": payload["id"], "success": True, "errors": []} for payload in payloads]


class _Campaigns:
    """Records the memberships it is asked to sync; ``failing`` entry keys fail."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.synced: list[dict[str, dict | None]] = []

    def sync(self, _chunk: Chunk, landed: list[tuple[Entry, str]],
             then: Callable[[set[str]], None]) -> None:
        self.synced.append({entry.key: entry.memberships for entry, _ in landed})
        then({entry.key for entry, _ in landed} & self.failing)


def test_the_deliverer_syncs_changed_memberships_and_records_only_what_fully_landed(tmp_path):
    ledger = _Ledger(tmp_path / "l.sqlite", **CAMPAIGNS)
    ann, bo = salesforce_id_key("003000000000001"), salesforce_id_key("003000000000002")
    stats = RunStats()
    source = Source("people", "Contact", stats.stream("people", "Contact"))
    client, campaigns = _Client(), _Campaigns(failing={bo})
    deliverer = Deliverer(client, Rejector(DeadLetter(None), stats), stats,  # type: ignore[arg-type]
                          dry_run=False, campaigns=campaigns,  # type: ignore[arg-type]
                          ledger=ledger.sync)

    def deliver(entries: list[Entry]) -> None:
        planned, _ = ledger.sync.diff("Contact", None, entries)
        chunk = Chunk(source=source, segment_fields=(), entries=[p.entry for p in planned],
                      plan=ledger.sync.pack(None, planned) if planned else None)
        deliverer.deliver(chunk)

    deliver([_person(ann, "Ann", {"s1": "realized"}), _person(bo, "Bo", {"s1": "realized"})])
    assert campaigns.synced[-1] == {ann: {"s1": "realized"}, bo: {"s1": "realized"}}
    # Ann: her membership changed only; Bo: his membership failed, so nothing of him was
    # recorded and he is sent again in full
    deliver([_person(ann, "Ann", {"s1": "exited"}), _person(bo, "Bo", {"s1": "realized"})])
    assert client.bodies[-1] == [
        {"attributes": {"type": "Contact"}, "id": ann},
        {"attributes": {"type": "Contact"}, "id": bo, "LastName": "Bo"}]
    assert campaigns.synced[-1] == {ann: {"s1": "exited"}, bo: {"s1": "realized"}}
    assert stats.streams["people"].fields_sent == 3  # two LastNames, then Bo's again


def test_the_emulator_keeps_the_field_names_of_what_it_received(emulator):
    ids = seed_contacts(emulator, 2)
    body = json.dumps({"records": [
        {"attributes": {"type": "Contact"}, "id": ids[0], "Email": "a@example.org"},
        {"attributes": {"type": "Contact"}, "id": ids[1], "LastName": "B", "FirstName": "C"}]})
    token = json.load(urllib.request.urlopen(urllib.request.Request(
        f"{emulator.url}/services/oauth2/token", method="POST",
        data=urllib.parse.urlencode({
            "grant_type": "password", "username": CREDENTIALS["username"],
            "password": CREDENTIALS["password"] + CREDENTIALS["security_token"],
            "client_id": CREDENTIALS["client_id"],
            "client_secret": CREDENTIALS["client_secret"]}).encode())))
    request = urllib.request.Request(
        f"{emulator.url}/services/data/v63.0/composite/sobjects", data=body.encode(),
        method="PATCH", headers={"Authorization": f"Bearer {token['access_token']}",
                                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        assert all(result["success"] for result in json.load(response))
    expected = [["attributes", "id", "Email"], ["attributes", "id", "LastName", "FirstName"]]
    assert emulator.received() == expected
    with urllib.request.urlopen(f"{emulator.url}/__emulator__/received") as response:
        assert json.load(response) == expected
