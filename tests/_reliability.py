"""Helpers shared by the reliability suites (faults, kill/resume, limits, bad input, secrets).

Everything here drives the real CLI in a subprocess against the in-process emulator; nothing
mocks the target's own HTTP client.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from target_salesforce_crm.emulator import Emulator

# Fields the target may write; timestamps and derived fields are the org's business.
VOLATILE_FIELDS = frozenset({"LastModifiedDate", "CreatedDate"})
SEGMENT_PATHS = {"seg-loyal": "Seg_Loyal__c", "seg-churn": "Seg_Churn_Risk__c",
                 "seg-news": "Seg_Newsletter__c"}

# Runs the real CLI entry point; the first argument (if not "-") overrides the SDK's max record
# age, the only way to see mid-stream STATE messages without a run longer than a minute.
_LAUNCHER = (
    "import sys\n"
    "from target_salesforce_crm.target import TargetSalesforceCRM as T\n"
    "age, ages = sys.argv.pop(1), sys.argv.pop(1)\n"
    "if age != '-':\n"
    "    T._MAX_RECORD_AGE_IN_MINUTES = float(age)\n"
    "if ages != '-':\n"
    "    T._BULK_JOB_AGES = int(ages)\n"
    "T.cli()\n"
)


def snapshot(emu: Emulator, object_name: str = "Contact") -> dict[str, dict[str, Any]]:
    """Every record of ``object_name`` by Id, without the org's own timestamps."""
    return {
        record["Id"]: {k: v for k, v in record.items() if k not in VOLATILE_FIELDS}
        for record in emu.records(object_name)
    }


def expected_contacts(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the reference Contact mapping leaves in the org, applying records in order.

    Absent and null values are not written (a partial profile never blanks a field); an empty
    string is written and blanks the field (the org then holds null), except an empty segment
    status, which is skipped. Only valid records may be passed in (an empty LastName is not).
    """
    result: dict[str, dict[str, Any]] = {}
    for record in records:
        values = result.setdefault(record["crmID"], {})
        person = (record.get("person") or {}).get("name") or {}
        for source, target in (("lastName", "LastName"), ("firstName", "FirstName")):
            if person.get(source) is not None:
                values[target] = person[source] or None
        email = (record.get("personalEmail") or {}).get("address")
        if email is not None:
            values["Email"] = email or None
        ups = (record.get("segmentMembership") or {}).get("ups") or {}
        for segment, field in SEGMENT_PATHS.items():
            status = (ups.get(segment) or {}).get("status")
            if status not in (None, ""):
                values[field] = status
    return result


def assert_org_matches(emu: Emulator, expected: dict[str, dict[str, Any]]) -> None:
    """Every expected field value is in the org; report all differences at once."""
    wrong = []
    for record_id, fields in expected.items():
        stored = emu.get("Contact", record_id) or {}
        for name, value in fields.items():
            if stored.get(name) != value:
                wrong.append((record_id, name, value, stored.get(name)))
    assert not wrong, f"{len(wrong)} field values differ (id, field, expected, got): {wrong[:5]}"


def assert_same_org(expected: dict[str, dict], got: dict[str, dict]) -> None:
    assert set(got) == set(expected), "the set of records differs"
    differing = [record_id for record_id in expected if expected[record_id] != got[record_id]]
    detail = [(i, expected[i], got[i]) for i in differing[:2]]
    assert not differing, f"{len(differing)} records differ from the clean run: {detail}"


def no_traceback(stderr: str) -> bool:
    return "Traceback (most recent call last)" not in stderr


def write_config(config: dict[str, Any], directory: Path) -> Path:
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def cli_command(config_path: Path, *, max_record_age_minutes: float | None = None,
                bulk_job_ages: int | None = None) -> list[str]:
    """The CLI, optionally with the max record age lowered (STATE and partial chunks more
    often) and with a Bulk spool run every ``bulk_job_ages`` max ages of a steady stream."""
    age = "-" if max_record_age_minutes is None else repr(max_record_age_minutes)
    ages = "-" if bulk_job_ages is None else str(bulk_job_ages)
    return [sys.executable, "-c", _LAUNCHER, age, ages, "--config", str(config_path)]


def message_lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def resume_after(lines: list[str], state: dict[str, Any] | None) -> list[str]:
    """What a tap resuming from ``state`` sends: its SCHEMA, then everything after that STATE."""
    if state is None:
        return list(lines)
    schema = [line for line in lines if json.loads(line)["type"] == "SCHEMA"]
    for index, line in enumerate(lines):
        message = json.loads(line)
        if message["type"] == "STATE" and message["value"] == state:
            return schema + lines[index + 1:]
    raise AssertionError(f"STATE {state} was never sent by the tap")


class LiveRun:
    """The CLI in a subprocess, fed slowly from a thread; STATE lines collected as they come."""

    def __init__(self, config: dict[str, Any], directory: Path, lines: list[str], *,
                 lines_per_tick: int = 20, tick_seconds: float = 0.015,
                 max_record_age_minutes: float | None = None,
                 bulk_job_ages: int | None = None) -> None:
        self.directory = directory
        self.lines = lines
        self.fed = 0
        self.states: list[dict[str, Any]] = []
        self.stderr_path = directory / "stderr.txt"
        config_path = write_config(config, directory)
        self._stderr = self.stderr_path.open("w")
        self.process = subprocess.Popen(
            cli_command(config_path, max_record_age_minutes=max_record_age_minutes,
                        bulk_job_ages=bulk_job_ages),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            cwd=directory, env=dict(os.environ),
        )
        self._lines_per_tick = lines_per_tick
        self._tick = tick_seconds
        self._writer = threading.Thread(target=self._feed, daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._writer.start()
        self._reader.start()

    def _feed(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            for index, line in enumerate(self.lines, 1):
                stdin.write(line)
                self.fed = index
                if index % self._lines_per_tick == 0:
                    stdin.flush()
                    time.sleep(self._tick)
            stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            return

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            if line.strip():
                self.states.append(json.loads(line))

    def wait_until(self, condition: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition() and self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("the run never reached the kill point")
            time.sleep(0.002)

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def finish(self, timeout: float = 120) -> int:
        """Wait for the exit, then close every pipe (stdin stays open when the run was killed
        before it read all its input)."""
        code = self.process.wait(timeout=timeout)
        self._writer.join(timeout=10)
        self._reader.join(timeout=10)
        for pipe in (self.process.stdin, self.process.stdout, self._stderr):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):  # unread input, nobody to read it
                    pipe.close()
        return code

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    @property
    def last_state(self) -> dict[str, Any] | None:
        return self.states[-1] if self.states else None
