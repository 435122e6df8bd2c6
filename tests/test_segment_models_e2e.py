"""Segment models end to end through the CLI: checkbox, picklist and Campaign membership land
as specified, an identical re-run changes nothing, and provisioning creates what is missing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CREDENTIALS, profile, run_target, seed_contacts, singer_lines

from target_salesforce_crm.emulator import Emulator

STATUSES = ("realized", "existing", "exited")


@pytest.fixture
def typed_org() -> Iterator[Emulator]:
    emu = Emulator(segment_fields=["Seg_Box__c:checkbox",
                                   "Seg_Pick__c:picklist=realized|existing|Gone",
                                   "Seg_Text__c"], random_seed=3)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def _config(emu: Emulator, tmp_path: Any, segments: list[dict], **extra: Any) -> dict:
    return {"login_url": emu.url, **CREDENTIALS, "segment_mappings": segments,
            "rejected_records_path": str(tmp_path / "rejected.jsonl"),
            "run_report_path": str(tmp_path / "report.json"), **extra}


def _profiles(ids: list[str], statuses: dict[str, str], shift: int = 0) -> list[dict]:
    """Profile n carries, in each segment, the status STATUSES[(n + shift) % 3]."""
    records = []
    for n, record_id in enumerate(ids):
        status = STATUSES[(n + shift) % 3]
        records.append(profile(record_id, n, **{seg: status for seg in statuses}))
    return records


def _seed_campaign(emu: Emulator, name: str, labels: tuple[str, ...] = STATUSES) -> str:
    [campaign] = emu.seed("Campaign", [{"Name": name, "IsActive": True}])
    emu.seed("CampaignMemberStatus", [
        {"CampaignId": campaign, "Label": label, "SortOrder": 10 + n}
        for n, label in enumerate(labels)])
    return campaign


def test_checkbox_and_picklist_models(typed_org, tmp_path):
    emu = typed_org
    ids = seed_contacts(emu, 30)
    segments = [{"segment_id": "seg-box", "mapping_id": "Seg_Box", "model": "checkbox"},
                {"segment_id": "seg-pick", "mapping_id": "Seg_Pick__c", "model": "picklist"},
                {"segment_id": "seg-text", "mapping_id": "Seg_Text"}]
    config = _config(emu, tmp_path, segments, segment_status_values={"exited": "Gone"})
    wanted = {"seg_box": "", "seg_pick": "", "seg_text": ""}

    first = run_target(config, singer_lines("contacts", _profiles(ids, wanted)), tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.rejected == []
    for n, record_id in enumerate(ids):
        status = STATUSES[n % 3]
        stored = emu.get("Contact", record_id)
        assert stored["Seg_Box__c"] is (status != "exited")
        assert stored["Seg_Pick__c"] == ("Gone" if status == "exited" else status)
        assert stored["Seg_Text__c"] == ("Gone" if status == "exited" else status)
    before = {record_id: emu.get("Contact", record_id) for record_id in ids}

    again = run_target(config, singer_lines("contacts", _profiles(ids, wanted)), tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.rejected == []
    for record_id in ids:
        stored = emu.get("Contact", record_id)
        assert {k: stored[k] for k in ("Seg_Box__c", "Seg_Pick__c", "Seg_Text__c")} == {
            k: before[record_id][k] for k in ("Seg_Box__c", "Seg_Pick__c", "Seg_Text__c")}

    moved = run_target(config, singer_lines("contacts", _profiles(ids, wanted, shift=1)),
                       tmp_path)
    assert moved.returncode == 0, moved.stderr
    for n, record_id in enumerate(ids):
        status = STATUSES[(n + 1) % 3]
        assert emu.get("Contact", record_id)["Seg_Box__c"] is (status != "exited")


def test_campaign_model_statuses_changes_and_exits(emulator, tmp_path):
    ids = seed_contacts(emulator, 40)
    spring = _seed_campaign(emulator, "Spring Promo")
    vip = _seed_campaign(emulator, "VIP")
    segments = [{"segment_id": "seg-loyal", "mapping_id": "Spring Promo", "model": "campaign"},
                {"segment_id": "seg-churn", "mapping_id": vip, "model": "campaign"}]
    config = _config(emulator, tmp_path, segments, batch_size=15)
    statuses = {"seg_loyal": "", "seg_churn": ""}

    def members() -> dict[tuple[str, str], str]:
        return {(m["ContactId"], m["CampaignId"]): m["Status"]
                for m in emulator.records("CampaignMember")}

    run = run_target(config, singer_lines("contacts", _profiles(ids, statuses)), tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.rejected == []
    expected = {(record_id, campaign): STATUSES[n % 3]
                for n, record_id in enumerate(ids) for campaign in (spring, vip)}
    assert members() == expected
    report = run.report["campaign_members"]
    assert report["segments"]["seg-loyal"]["created"] == 40
    # one membership query per 15-record chunk; the 80 creates pooled across chunks: 1 call
    assert report["calls"]["membership_queries"] == 3
    assert report["calls"]["membership_writes"] == 1

    same = run_target(config, singer_lines("contacts", _profiles(ids, statuses)), tmp_path)
    assert same.returncode == 0, same.stderr
    assert same.rejected == []
    assert members() == expected
    assert same.report["campaign_members"]["calls"].get("membership_writes", 0) == 0

    removing = {**config, "campaign_exit": "delete"}
    shifted = run_target(removing, singer_lines("contacts", _profiles(ids, statuses, shift=1)),
                         tmp_path)
    assert shifted.returncode == 0, shifted.stderr
    assert shifted.rejected == []
    now = {(record_id, campaign): STATUSES[(n + 1) % 3]
           for n, record_id in enumerate(ids) for campaign in (spring, vip)
           if STATUSES[(n + 1) % 3] != "exited"}
    assert members() == now
    loyal = shifted.report["campaign_members"]["segments"]["seg-loyal"]
    assert loyal["removed"] == sum(1 for n in range(40) if STATUSES[(n + 1) % 3] == "exited")


def test_a_member_added_meanwhile_is_updated_not_dead_lettered(emulator, tmp_path):
    ids = seed_contacts(emulator, 3)
    campaign = _seed_campaign(emulator, "Spring Promo")
    emulator.seed("CampaignMember", [{"CampaignId": campaign, "ContactId": ids[0],
                                      "Status": "Sent"}])
    config = _config(emulator, tmp_path, [{"segment_id": "seg-loyal",
                                           "mapping_id": "Spring Promo", "model": "campaign"}])
    records = [profile(record_id, n, seg_loyal="existing") for n, record_id in enumerate(ids)]
    run = run_target(config, singer_lines("contacts", records), tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.rejected == []
    assert sorted(m["Status"] for m in emulator.records("CampaignMember")) == ["existing"] * 3


def test_250_campaign_segments_in_one_run(emulator, tmp_path):
    ids = seed_contacts(emulator, 20)
    names = [f"Audience {n:03d}" for n in range(250)]
    for name in names:
        _seed_campaign(emulator, name)
    segments = [{"segment_id": f"aud-{n}", "mapping_id": name}
                for n, name in enumerate(names)]
    records = []
    for n, record_id in enumerate(ids):
        record = profile(record_id, n)
        record["segmentMembership"]["ups"] = {
            f"aud-{k}": {"status": "realized"} for k in range(n, 250, 20)}
        records.append(record)
    config = _config(emulator, tmp_path, segments, segment_model="campaign")

    run = run_target(config, singer_lines("contacts", records), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.rejected == []
    assert len(emulator.records("CampaignMember")) == 250
    assert run.report["campaign_members"]["calls"]["membership_queries"] == 1
    assert run.report["campaign_members"]["calls"]["membership_writes"] == 2  # 250 creates


def test_26_field_segments_are_refused_at_start_up(emulator, tmp_path):
    segments = [{"segment_id": f"s{n}", "mapping_id": f"Seg_{n}"} for n in range(26)]
    run = run_target(_config(emulator, tmp_path, segments), "", tmp_path)
    assert run.returncode == 1
    assert "26 entries for segment fields" in run.stderr
    assert emulator.stats()["token_requests"] == 0


@pytest.mark.parametrize("case", ["missing status", "unknown name", "same name twice",
                                  "picklist value"])
def test_campaign_and_picklist_problems_are_refused_naming_them(typed_org, tmp_path, case):
    emu = typed_org
    ids = seed_contacts(emu, 2)
    if case == "missing status":
        _seed_campaign(emu, "Spring Promo", labels=("realized", "existing"))
        segments = [{"segment_id": "s", "mapping_id": "Spring Promo", "model": "campaign"}]
        named = "has no Campaign Member Status 'exited'"
    elif case == "unknown name":
        segments = [{"segment_id": "s", "mapping_id": "No Such Campaign", "model": "campaign"}]
        named = "'No Such Campaign'"
    elif case == "same name twice":
        _seed_campaign(emu, "Twice")
        _seed_campaign(emu, "Twice")
        segments = [{"segment_id": "s", "mapping_id": "Twice", "model": "campaign"}]
        named = "2 Campaigns have this name"
    else:
        segments = [{"segment_id": "s", "mapping_id": "Seg_Pick", "model": "picklist"}]
        named = "no active value 'exited'"
    records = [profile(record_id, n, s="realized") for n, record_id in enumerate(ids)]
    run = run_target(_config(emu, tmp_path, segments), singer_lines("contacts", records),
                     tmp_path)
    assert run.returncode == 1
    assert named in run.stderr
    assert emu.stats()["collections_calls"] == 0


@pytest.fixture
def bare_org() -> Iterator[Emulator]:
    emu = Emulator(segment_fields=[], random_seed=5)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def test_provisioning_from_an_empty_org(bare_org, tmp_path):
    emu = bare_org
    ids = seed_contacts(emu, 10)
    segments = [{"segment_id": "seg-a", "mapping_id": "Seg_Alpha"},
                {"segment_id": "seg-b", "mapping_id": "Seg_Beta", "model": "checkbox"},
                {"segment_id": "seg-c", "mapping_id": "Seg_Gamma", "model": "picklist"},
                {"segment_id": "seg-d", "mapping_id": "Launch Audience", "model": "campaign"}]
    config = _config(emu, tmp_path, segments, provision_segment_fields=True)
    records = [profile(record_id, n, seg_a="realized", seg_b="existing", seg_c="exited",
                       seg_d="realized") for n, record_id in enumerate(ids)]
    lines = singer_lines("contacts", records)

    planned = run_target({**config, "dry_run": True}, lines, tmp_path)
    assert planned.returncode == 0, planned.stderr
    would = planned.report["provisioning"]["would_create"]
    assert sorted(would["fields_created"]) == [
        "Contact.Seg_Alpha__c", "Contact.Seg_Beta__c", "Contact.Seg_Gamma__c"]
    assert would["campaigns_created"] == ["Launch Audience"]
    assert emu.records("Campaign") == []
    assert "Seg_Alpha__c" not in emu.get("Contact", ids[0])

    run = run_target(config, lines, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.rejected == []
    created = run.report["provisioning"]["created"]
    assert len(created["fields_created"]) == 3
    assert created["permission_set_created"] is True
    assert created["campaigns_created"] == ["Launch Audience"]
    stored = emu.get("Contact", ids[0])
    assert (stored["Seg_Alpha__c"], stored["Seg_Beta__c"], stored["Seg_Gamma__c"]) == (
        "realized", True, "exited")
    assert {m["Status"] for m in emu.records("CampaignMember")} == {"realized"}
    assert len(emu.records("CampaignMember")) == 10

    second = run_target(config, lines, tmp_path)
    assert second.returncode == 0, second.stderr
    again = second.report["provisioning"]["created"]
    assert again["fields_created"] == [] and again["campaigns_created"] == []
    assert again["permission_set_created"] is False and again["statuses_added"] == {}
    assert second.rejected == []
