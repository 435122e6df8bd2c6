"""The README's settings table and meltano.yml stay in sync with the code."""

from __future__ import annotations

import copy
import subprocess
import sys

import yaml
from conftest import ROOT

from target_salesforce_crm.target import CONFIG_SCHEMA, TargetSalesforceCRM


def _about_settings_rows() -> list[str]:
    about = subprocess.run(
        [sys.executable, "-m", "target_salesforce_crm", "--about", "--format", "markdown"],
        capture_output=True, text=True, check=True,
    ).stdout
    return [line for line in about.splitlines() if line.startswith("| ")]


def test_readme_carries_the_current_settings_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = _about_settings_rows()
    assert rows, "--about printed no settings table"
    missing = [row for row in rows if row not in readme]
    assert missing == [], "README settings table is out of date; paste `--about --format markdown`"


def test_meltano_yml_declares_every_setting_with_a_kind():
    spec = yaml.safe_load((ROOT / "meltano.yml").read_text())
    loader = next(p for p in spec["plugins"]["loaders"] if p["name"] == "target-salesforce-crm")
    declared = {s["name"]: s for s in loader["settings"]}
    schema_with_builtins = copy.deepcopy(CONFIG_SCHEMA)
    TargetSalesforceCRM.append_builtin_config(schema_with_builtins)
    for name, schema in schema_with_builtins["properties"].items():
        assert name in declared, f"meltano.yml does not declare {name}"
        assert declared[name].get("kind"), f"meltano.yml gives {name} no kind"
        if schema.get("secret"):
            assert declared[name].get("sensitive") is True, f"{name} must be sensitive: true"
