"""The Meltano path: `meltano install` + `meltano run tap-jsonl target-salesforce-crm`.

Runs the repository's own meltano.yml (copied into a scratch project so the test leaves the
checkout clean) against an in-process emulator seeded with the demo org.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CREDENTIALS, ROOT

from target_salesforce_crm.emulator import Emulator

MELTANO = Path(sys.executable).with_name("meltano")
DEMO_SEGMENT_FIELDS = ["Seg_Loyal_Customers__c", "Seg_Cart_Abandoners__c", "Seg_Newsletter__c"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not MELTANO.exists(), reason="meltano is installed by scripts/test.sh"),
]


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def demo_org():
    emu = Emulator(segment_fields=DEMO_SEGMENT_FIELDS)
    emu.start()
    emu.seed("Contact", _read_jsonl(ROOT / "sample_data" / "org_contacts.jsonl"))
    emu.seed("Lead", _read_jsonl(ROOT / "sample_data" / "org_leads.jsonl"))
    try:
        yield emu
    finally:
        emu.stop()


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    spec = yaml.safe_load((ROOT / "meltano.yml").read_text())
    for loader in spec["plugins"]["loaders"]:
        loader["pip_url"] = f"-e {ROOT}"
    shutil.copytree(ROOT / "sample_data", project / "sample_data")
    (project / "meltano.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return project


def _meltano(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MELTANO), *args], cwd=project, env=env, capture_output=True, text=True,
        timeout=900, check=False,
    )


def test_meltano_run_updates_the_org(demo_org, tmp_path):
    project = _project(tmp_path)
    env = {
        **os.environ,
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TARGET_SALESFORCE_CRM_LOGIN_URL": demo_org.url,
        **{f"TARGET_SALESFORCE_CRM_{k.upper()}": v for k, v in CREDENTIALS.items()},
    }
    install = _meltano(project, env, "install")
    assert install.returncode == 0, install.stdout + install.stderr

    run = _meltano(project, env, "run", "tap-jsonl", "target-salesforce-crm",
                   "tap-jsonl-leads", "target-salesforce-crm")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    profiles = _read_jsonl(project / "sample_data" / "contacts.jsonl")
    first = profiles[1]
    stored = demo_org.get("Contact", first["crmID"])
    assert stored["LastName"] == first["person"]["name"]["lastName"]
    assert stored["Email"] == first["personalEmail"]["address"]
    for segment_id, membership in first["segmentMembership"]["ups"].items():
        field = {"5b2e6a1f-3c4d-4e5f-8a9b-0c1d2e3f4a5b": "Seg_Loyal_Customers__c",
                 "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a": "Seg_Cart_Abandoners__c",
                 "0a1b2c3d-4e5f-4a7b-9c8d-7e6f5a4b3c2d": "Seg_Newsletter__c"}[segment_id]
        assert stored[field] == membership["status"]
    leads = _read_jsonl(project / "sample_data" / "leads.jsonl")
    assert demo_org.get("Lead", leads[0]["crmID"])["Company"] == leads[0]["b2b"]["companyName"]

    rejected = _read_jsonl(project / "output" / "rejected_records.jsonl")
    assert sorted(r["error_code"] for r in rejected) == sorted([
        "MISSING_ID", "MALFORMED_ID", "WRONG_OBJECT_ID", "INVALID_EMAIL_ADDRESS",
        "ENTITY_IS_DELETED", "REQUIRED_FIELD_MISSING"])
    stats = demo_org.stats()
    assert stats["collections_calls"] == 3  # ceil(301/200) contacts + ceil(60/200) leads
    # two target runs (contacts, then leads); each pre-flights every configured object first
    assert stats["describe_calls"] == {"Contact": 2, "Lead": 2}
    assert CREDENTIALS["password"] not in run.stdout + run.stderr
