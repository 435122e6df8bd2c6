"""skip_unchanged end to end: scenarios run on a SQLite ledger (test_skip_unchanged.py) and on
the real PostgreSQL server (test_ledger_postgres_e2e.py).

Each drives the real CLI against the emulator and judges a run by what the emulator received
(its collections calls, and the field names of each record it was sent) and by the org.
A scenario takes ``ledger_url`` and ``wipe_ledger`` (how to delete that ledger) as arguments.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _reliability import LiveRun, assert_same_org, message_lines, resume_after, snapshot
from conftest import (
    SEGMENT_FIELDS,
    Run,
    base_config,
    profile,
    run_target,
    seed_contacts,
    singer_lines,
)

from target_salesforce_crm.emulator import Emulator

COUNT = 1000
KEYS = ["attributes", "id"]
ALL_FIELDS = sorted(["LastName", "FirstName", "Email", "Seg_Loyal__c", "Seg_Churn_Risk__c"])
SHORT_AGE_MINUTES = 0.004  # STATE every 0.24 s, so a kill lands between STATEs


@dataclass
class Sent:
    """One run, and what the emulator received during it."""

    run: Run
    calls: int  # collections calls
    api_calls: int  # every counted API request (describe, collections, query ...)
    describes: int
    tokens: int
    fields: list[list[str]]  # per record sent: its field names, in the order received

    @property
    def records(self) -> int:
        return len(self.fields)

    @property
    def totals(self) -> dict[str, int]:
        return self.run.report["totals"]


def profiles(ids: list[str], *, version: int = 0) -> list[dict[str, Any]]:
    return [profile(record_id, n + version * 100_000, seg_loyal="realized", seg_churn="existing")
            for n, record_id in enumerate(ids)]


def ledger_config(emu: Emulator, directory: Path, ledger_url: str,
                  **overrides: Any) -> dict[str, Any]:
    return base_config(emu, directory, skip_unchanged=True, ledger_url=ledger_url, **overrides)


def send(emu: Emulator, directory: Path, records: list[dict[str, Any]], ledger_url: str,
         **overrides: Any) -> Sent:
    """Run the CLI once in its own folder (its report, dead letters and stderr stay apart)."""
    directory.mkdir(parents=True)
    before = emu.stats()
    run = run_target(ledger_config(emu, directory, ledger_url, **overrides),
                     singer_lines("contacts", records), directory)
    after = emu.stats()
    assert run.returncode == 0, run.stderr[-3000:]
    count = after["collections_records"] - before["collections_records"]
    return Sent(
        run=run,
        calls=after["collections_calls"] - before["collections_calls"],
        api_calls=after["api_calls"] - before["api_calls"],
        describes=sum(after["describe_calls"].values()) - sum(before["describe_calls"].values()),
        tokens=after["token_requests"] - before["token_requests"],
        fields=emu.received()[-count:] if count else [],
    )


def field_sets(sent: Sent) -> list[list[str]]:
    """Each record's field names, key fields first, the rest sorted."""
    return [KEYS + sorted(name for name in names if name not in KEYS) for names in sent.fields]


# --- scenarios --------------------------------------------------------------------------


def unchanged_rerun_sends_nothing(emu: Emulator, tmp_path: Path, ledger_url: str) -> None:
    ids = seed_contacts(emu, COUNT)
    first = send(emu, tmp_path / "first", profiles(ids), ledger_url)
    assert first.records == COUNT and first.calls == COUNT // 200
    assert field_sets(first) == [KEYS + ALL_FIELDS] * COUNT
    org = snapshot(emu)

    again = send(emu, tmp_path / "again", profiles(ids), ledger_url)

    assert again.calls == 0 and again.records == 0
    assert again.api_calls == again.describes == 1 and again.tokens == 1  # token, describe
    assert again.totals["skipped_unchanged"] == COUNT
    assert again.totals["updated"] == 0 and again.totals["fields_sent"] == 0
    assert again.run.report["streams"]["contacts"]["skipped_unchanged"] == COUNT
    assert again.run.states == [{"offset": COUNT}]
    assert snapshot(emu) == org


def one_percent_changed_sends_only_the_changed_field(emu: Emulator, tmp_path: Path,
                                                     ledger_url: str) -> None:
    ids = seed_contacts(emu, COUNT)
    send(emu, tmp_path / "first", profiles(ids), ledger_url)
    records = profiles(ids)
    changed = set(range(3, COUNT, 100))  # 1%
    for n in changed:
        records[n]["segmentMembership"]["ups"]["seg-churn"]["status"] = "exited"

    sent = send(emu, tmp_path / "changed", records, ledger_url)

    assert sent.records == len(changed) and sent.calls == 1
    assert field_sets(sent) == [[*KEYS, "Seg_Churn_Risk__c"]] * len(changed)
    exited = {record_id for record_id, fields in snapshot(emu).items()
              if fields["Seg_Churn_Risk__c"] == "exited"}
    assert exited == {ids[n] for n in changed}
    assert sent.totals["skipped_unchanged"] == COUNT - len(changed)
    assert sent.totals["fields_sent"] == len(changed)
    assert sent.run.report["segment_fields_sent"] == {"Seg_Churn_Risk__c": len(changed)}


def a_mapping_change_resends_that_field_everywhere(emu: Emulator, tmp_path: Path,
                                                  ledger_url: str) -> None:
    ids = seed_contacts(emu, COUNT)
    mapping = [{"source": "person.name.lastName", "target": "LastName"},
               {"source": "person.name.firstName", "target": "FirstName"},
               {"source": "personalEmail.address", "target": "Email"}]
    send(emu, tmp_path / "first", profiles(ids), ledger_url, field_mappings=mapping)
    remapped = [*mapping[:1], {"source": "person.name.lastName", "target": "FirstName"},
                *mapping[2:]]

    sent = send(emu, tmp_path / "remapped", profiles(ids), ledger_url, field_mappings=remapped)

    assert field_sets(sent) == [[*KEYS, "FirstName"]] * COUNT
    assert {fields["FirstName"] for fields in snapshot(emu).values()} == {
        f"Last{n}" for n in range(COUNT)}
    assert send(emu, tmp_path / "again", profiles(ids), ledger_url,
                field_mappings=remapped).records == 0


def full_resync_sends_everything(emu: Emulator, tmp_path: Path, ledger_url: str) -> None:
    ids = seed_contacts(emu, COUNT)
    send(emu, tmp_path / "first", profiles(ids), ledger_url)

    resync = send(emu, tmp_path / "resync", profiles(ids), ledger_url, full_resync=True)

    assert field_sets(resync) == [KEYS + ALL_FIELDS] * COUNT
    assert resync.totals["skipped_unchanged"] == 0
    assert send(emu, tmp_path / "after", profiles(ids), ledger_url).records == 0


def a_deleted_ledger_means_one_full_resend(emu: Emulator, tmp_path: Path, ledger_url: str,
                                           wipe_ledger: Callable[[], None]) -> None:
    ids = seed_contacts(emu, COUNT)
    send(emu, tmp_path / "first", profiles(ids), ledger_url)
    wipe_ledger()

    resent = send(emu, tmp_path / "resent", profiles(ids), ledger_url)

    assert field_sets(resent) == [KEYS + ALL_FIELDS] * COUNT
    warnings = [line for line in resent.run.stderr.splitlines()
                if "WARNING" in line and "sync ledger" in line]
    assert len(warnings) == 1 and "in full" in warnings[0], warnings
    assert resent.run.report["ledger"]["warnings"]
    assert send(emu, tmp_path / "after", profiles(ids), ledger_url).records == 0


def rejected_records_are_sent_again(emu: Emulator, tmp_path: Path, ledger_url: str) -> None:
    """Refused by Salesforce (a poisoned value) or by the target (a bad email): not recorded,
    so sent again once the cause is gone, new or changed alike."""
    ids = seed_contacts(emu, COUNT)
    records = profiles(ids)
    poisoned = [10, 500, 999]
    for n in poisoned:
        records[n]["person"]["name"]["lastName"] = f"POISON{n}"
    records[7]["personalEmail"]["address"] = "not-an-email"
    emu.set_faults(poison_values=["POISON"])
    first = send(emu, tmp_path / "first", records, ledger_url)
    assert first.totals["rejected"] == len(poisoned) + 1
    assert first.totals["updated"] == COUNT - len(poisoned) - 1

    emu.set_faults(poison_values=[])
    records[7]["personalEmail"]["address"] = "fixed@example.org"
    second = send(emu, tmp_path / "second", records, ledger_url)

    assert second.records == len(poisoned) + 1 and second.totals["rejected"] == 0
    assert field_sets(second) == [KEYS + ALL_FIELDS] * (len(poisoned) + 1)
    assert {emu.get("Contact", ids[n])["LastName"] for n in poisoned} == {
        f"POISON{n}" for n in poisoned}

    # a changed value refused again: its old entry stays, and only the change is re-sent
    records[20]["personalEmail"]["address"] = "POISON@example.org"
    emu.set_faults(poison_values=["POISON@"])
    assert send(emu, tmp_path / "third", records, ledger_url).totals["rejected"] == 1
    emu.set_faults(poison_values=[])
    fourth = send(emu, tmp_path / "fourth", records, ledger_url)
    assert field_sets(fourth) == [[*KEYS, "Email"]]
    assert emu.get("Contact", ids[20])["Email"] == "POISON@example.org"


def two_processes_share_one_ledger(emu: Emulator, tmp_path: Path, ledger_url: str) -> None:
    """Two targets at once, each on its own records plus a shared tenth with equal values."""
    ids = seed_contacts(emu, 2 * COUNT)
    shared = ids[:COUNT // 10]
    halves = [shared + ids[COUNT // 10:COUNT], shared + ids[COUNT:]]
    by_id = {record["crmID"]: record for record in profiles(ids)}
    emu.set_faults(latency_ms=30)
    processes = []
    for index, half in enumerate(halves):
        directory = tmp_path / f"writer{index}"
        directory.mkdir()
        config = ledger_config(emu, directory, ledger_url, batch_size=50, max_concurrency=2)
        (directory / "config.json").write_text(json.dumps(config))
        process = subprocess.Popen(
            [sys.executable, "-m", "target_salesforce_crm", "--config", "config.json"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=directory, env=dict(os.environ))
        processes.append((process, singer_lines("contacts", [by_id[i] for i in half])))
    for process, text in processes:
        assert process.stdin is not None
        process.stdin.write(text)
        process.stdin.close()
    for process, _ in processes:
        process.wait(timeout=300)
        assert process.returncode == 0, process.stderr.read() if process.stderr else ""
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()
    spans = [json.loads((tmp_path / f"writer{i}" / "report.json").read_text()) for i in (0, 1)]
    assert max(s["started_at"] for s in spans) < min(s["finished_at"] for s in spans)
    emu.set_faults(latency_ms=0)
    assert all(emu.get("Contact", i)["LastName"] == by_id[i]["person"]["name"]["lastName"]
               for i in ids)

    again = send(emu, tmp_path / "again", [by_id[i] for i in ids], ledger_url)
    assert again.records == 0 and again.totals["skipped_unchanged"] == 2 * COUNT


# --- kill -9 during a skip_unchanged run ---------------------------------------------------

KILL_DISTINCT = 1500


def _killed_run_input(ids: list[str]) -> list[dict[str, Any]]:
    """A third of the profiles changed, then newer values for some of them (order matters)."""
    records = profiles(ids)
    for n in range(0, len(ids), 3):
        records[n]["segmentMembership"]["ups"]["seg-churn"]["status"] = "exited"
    for k in range(600):
        n = (k * 7) % 300
        records.append({"crmID": ids[n], "person": {"name": {"lastName": f"L{n}t{k}"}},
                        "segmentMembership": {"ups": {"seg-loyal": {
                            "status": "exited" if k < 300 else "existing"}}}})
    return records


def _org_as_profiles(emu: Emulator, ids: list[str]) -> list[dict[str, Any]]:
    """Profiles carrying exactly what the org holds: a ledger that agrees with the org skips
    every one of them."""
    records = []
    for record_id in ids:
        stored = emu.get("Contact", record_id) or {}
        records.append({
            "crmID": record_id,
            "person": {"name": {"firstName": stored["FirstName"],
                                "lastName": stored["LastName"]}},
            "personalEmail": {"address": stored["Email"]},
            "segmentMembership": {"ups": {
                "seg-loyal": {"status": stored["Seg_Loyal__c"]},
                "seg-churn": {"status": stored["Seg_Churn_Risk__c"]}}},
        })
    return records


def killed_run_then_rerun_equals_a_clean_run(
    tmp_path: Path, new_ledger: Callable[[str], str], kill_after: Callable[[LiveRun], bool],
) -> None:
    """A skip_unchanged run killed with SIGKILL, then re-run from its last STATE: the org is a
    clean run's, and the ledger agrees with the org (profiles holding exactly the org's
    values are all skipped)."""
    expected: dict[str, dict[str, Any]] = {}
    for case in ("clean", "killed"):
        directory = tmp_path / case
        ledger_url = new_ledger(case)
        with Emulator(segment_fields=SEGMENT_FIELDS) as emu:
            ids = seed_contacts(emu, KILL_DISTINCT)
            send(emu, directory / "before", profiles(ids), ledger_url)
            lines = message_lines(singer_lines("contacts", _killed_run_input(ids),
                                               state_every=100))
            if case == "clean":
                send(emu, directory / "run", _killed_run_input(ids), ledger_url)
                expected = snapshot(emu)
                continue
            emu.set_faults(latency_ms=40)
            (directory / "run").mkdir()
            config = ledger_config(emu, directory / "run", ledger_url, batch_size=50,
                                   max_concurrency=2)
            live = LiveRun(config, directory / "run", lines,
                           max_record_age_minutes=SHORT_AGE_MINUTES)
            live.wait_until(lambda run=live: kill_after(run))
            live.signal(signal.SIGKILL)
            assert live.finish() == -signal.SIGKILL, live.stderr[-2000:]
            emu.set_faults(latency_ms=0)
            resumed = "".join(resume_after(lines, live.last_state))
            (directory / "resume").mkdir()
            run = run_target(ledger_config(emu, directory / "resume", ledger_url),
                             resumed, directory / "resume")
            assert run.returncode == 0, run.stderr[-3000:]
            assert_same_org(expected, snapshot(emu))
            agree = send(emu, directory / "agree", _org_as_profiles(emu, ids), ledger_url)
            assert agree.records == 0, f"{agree.records} records disagree with the ledger"


KILL_POINTS: dict[str, Callable[[LiveRun], bool]] = {
    "early": lambda live: live.fed >= 400,
    "calls_in_flight": lambda live: len(live.states) >= 3,
    "near_the_end": lambda live: live.fed >= len(live.lines) - 200,
}
