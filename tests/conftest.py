"""Shared fixtures: an in-process emulator on loopback and a runner for the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from pg_server import postgres_server  # noqa: F401 - the session PostgreSQL server fixture

from target_salesforce_crm.emulator import FIXTURE_CREDENTIALS, Emulator, make_id

ROOT = Path(__file__).resolve().parent.parent
SEGMENT_FIELDS = ["Seg_Loyal__c", "Seg_Churn_Risk__c", "Seg_Newsletter__c"]
SEGMENTS = {"seg-loyal": "Seg_Loyal__c", "seg-churn": "Seg_Churn_Risk__c",
            "seg-news": "Seg_Newsletter__c"}
CREDENTIALS = dict(FIXTURE_CREDENTIALS)  # the emulator's documented fixture login
PROFILE_SCHEMA = {
    "type": "object",
    "properties": {
        "crmID": {"type": ["string", "null"]},
        "person": {"type": ["object", "null"], "additionalProperties": True},
        "personalEmail": {"type": ["object", "null"], "additionalProperties": True},
        "b2b": {"type": ["object", "null"], "additionalProperties": True},
        "segmentMembership": {"type": ["object", "null"], "additionalProperties": True},
    },
}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator(segment_fields=SEGMENT_FIELDS, random_seed=7)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def seed_contacts(emu: Emulator, count: int) -> list[str]:
    return emu.seed(
        "Contact",
        [{"LastName": f"Old{n}", "FirstName": "Before", "Email": f"old{n}@example.org"}
         for n in range(count)],
    )


def seed_leads(emu: Emulator, count: int) -> list[str]:
    return emu.seed(
        "Lead",
        [{"LastName": f"OldLead{n}", "Company": "Unknown"} for n in range(count)],
    )


def base_config(emu: Emulator, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "login_url": emu.url,
        **CREDENTIALS,
        "segment_mappings": [
            {"segment_id": seg, "mapping_id": field} for seg, field in SEGMENTS.items()
        ],
        "rejected_records_path": str(tmp_path / "rejected.jsonl"),
        "run_report_path": str(tmp_path / "report.json"),
    }
    config.update(overrides)
    return config


def profile(record_id: str | None, n: int, *, lead: bool = False, **segments: str) -> dict:
    """An XDM-shaped profile; ``segments`` maps segment id (with _ for -) to a status."""
    record: dict[str, Any] = {
        "crmID": record_id,
        "person": {"name": {"firstName": f"First{n}", "lastName": f"Last{n}"}},
        "personalEmail": {"address": f"person{n}@example.com"},
        "segmentMembership": {
            "ups": {
                seg.replace("_", "-"): {"status": status,
                                        "lastQualificationTime": "2026-11-01T10:00:00Z"}
                for seg, status in segments.items()
            }
        },
    }
    if lead:
        record["b2b"] = {"companyName": f"Company{n}"}
    return record


def singer_lines(stream: str, records: list[dict], *, state_every: int = 0,
                 schema: dict | None = None) -> str:
    lines = [json.dumps({"type": "SCHEMA", "stream": stream,
                         "schema": schema or PROFILE_SCHEMA, "key_properties": []})]
    for index, record in enumerate(records, 1):
        lines.append(json.dumps({"type": "RECORD", "stream": stream, "record": record}))
        if state_every and index % state_every == 0:
            lines.append(json.dumps({"type": "STATE", "value": {"offset": index}}))
    if not state_every or len(records) % state_every:
        lines.append(json.dumps({"type": "STATE", "value": {"offset": len(records)}}))
    return "\n".join(lines) + "\n"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    tmp_path: Path

    @property
    def states(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def rejected(self) -> list[dict]:
        path = self.tmp_path / "rejected.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    @property
    def report(self) -> dict:
        return json.loads((self.tmp_path / "report.json").read_text())


def run_target(config: dict[str, Any], input_text: str, tmp_path: Path,
               *, timeout: float = 300, env: dict[str, str] | None = None) -> Run:
    """Run the real CLI in a subprocess, as a tap would pipe into it."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, "-m", "target_salesforce_crm", "--config", str(config_path)],
        input=input_text, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, cwd=tmp_path, check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr, tmp_path)


__all__ = ["make_id"]


def access_token(emu: Emulator) -> str:
    """A token from the emulator's fixture login, for tests that call its API directly."""
    answer = requests.post(f"{emu.url}/services/oauth2/token", timeout=10, data={
        "grant_type": "password", "client_id": CREDENTIALS["client_id"],
        "client_secret": CREDENTIALS["client_secret"], "username": CREDENTIALS["username"],
        "password": CREDENTIALS["password"] + CREDENTIALS["security_token"]})
    answer.raise_for_status()
    return str(answer.json()["access_token"])
