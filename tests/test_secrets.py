"""Secrets and PII (SPEC §3 "Secrets and PII"): passwords, security tokens, client ids and
secrets and access tokens never appear in stdout, stderr, the run report or the dead-letter
file, on success, on auth failures, on a limit stop or on a fault-heavy run; logs name Ids,
fields and error codes, not profile values.

The emulator and the config share distinctive secret values; every access token the emulator
issues is recorded so it can be looked for too. Runs use ``LOGLEVEL=DEBUG`` where they succeed,
so every log line the SDK, urllib3 and the target can write is there to be searched.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from _reliability import no_traceback
from conftest import (
    SEGMENT_FIELDS,
    SEGMENTS,
    Run,
    profile,
    run_target,
    seed_contacts,
    singer_lines,
)

from target_salesforce_crm.emulator import Emulator
from target_salesforce_crm.emulator.auth import OAuthError, TokenCheck

SECRETS = {
    "username": "svc.crm+Qx71@example.org",
    "password": "Pw-Qx71-Lb93-Zt48",
    "security_token": "TkQx71Mn58Rv26",
    "client_id": "3MVG9Qx71ConsumerKeyHv3kP",
    "client_secret": "CsQx71SecretN0tForLogs",
}
NEVER_SHOWN = {
    "password": SECRETS["password"],
    "security_token": SECRETS["security_token"],
    "password+token": SECRETS["password"] + SECRETS["security_token"],
    "client_id": SECRETS["client_id"],
    "client_secret": SECRETS["client_secret"],
}
ACCESS_TOKEN_SHAPE = re.compile(r"00D\w{12}!AQ[\w-]{20,}")


class Org:
    """An emulator with the distinctive credentials, recording every access token it issues."""

    def __init__(self, **faults: Any) -> None:
        self.emu = Emulator(segment_fields=SEGMENT_FIELDS, **SECRETS, **faults).start()
        self.issued: list[str] = []
        store = self.emu._app.oauth.tokens
        issue = store.issue

        def recording_issue(*args: Any, **kwargs: Any) -> str:
            token = issue(*args, **kwargs)
            self.issued.append(token)
            return token

        store.issue = recording_issue

    def config(self, directory: Path, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "login_url": self.emu.url,
            **SECRETS,
            "segment_mappings": [{"segment_id": s, "mapping_id": f} for s, f in SEGMENTS.items()],
            "rejected_records_path": str(directory / "rejected.jsonl"),
            "run_report_path": str(directory / "report.json"),
        }
        config.update(overrides)
        return config


@pytest.fixture
def org():
    made: list[Org] = []

    def make(**faults: Any) -> Org:
        made.append(Org(**faults))
        return made[-1]

    yield make
    for each in made:
        each.emu.stop()


def _outputs(run: Run) -> dict[str, str]:
    outputs = {"stdout": run.stdout, "stderr": run.stderr}
    for name in ("report.json", "rejected.jsonl"):
        path = run.tmp_path / name
        if path.exists():
            outputs[name] = path.read_text()
    return outputs


def assert_no_secrets(run: Run, org: Org, *, extra: dict[str, str] | None = None) -> None:
    outputs = _outputs(run)
    assert "report.json" in outputs, "the run report must exist (also on failure)"
    secrets = {**NEVER_SHOWN, **(extra or {})}
    secrets.update({f"access token {n}": token for n, token in enumerate(org.issued)})
    leaks = [(name, where) for name, value in secrets.items()
             for where, text in outputs.items() if value in text]
    assert leaks == [], f"secrets found (secret, where): {leaks}"
    for where, text in outputs.items():
        assert "Bearer " not in text, where
        assert not ACCESS_TOKEN_SHAPE.search(text), where


def _records(ids: list[str]) -> list[dict]:
    records = [profile(i, n, seg_loyal="realized") for n, i in enumerate(ids)]
    bad = profile(ids[0], 999)
    bad["personalEmail"]["address"] = "leaky.value@not valid"
    return [*records, bad, profile("003BROKEN", 998)]


def test_successful_run_at_debug_level_shows_no_secret_and_no_profile_value(org, tmp_path):
    o = org()
    ids = seed_contacts(o.emu, 300)
    run = run_target(o.config(tmp_path, batch_size=100),
                     singer_lines("contacts", _records(ids)), tmp_path,
                     env={"LOGLEVEL": "DEBUG"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert o.issued and len(run.rejected) == 2
    assert_no_secrets(run, o)
    # PII: logs and messages name Ids, fields and codes, never the profile's values
    for value in ("person7@example.com", "First7", "Last7", "leaky.value@not valid"):
        assert value not in run.stderr
    assert all("leaky.value" not in line["message"] for line in run.rejected)


@pytest.mark.parametrize(
    ("wrong", "value"),
    [("password", "Wr0ngPw-Qx71-Ee55"), ("security_token", "WrongTkQx71Aa11"),
     ("client_id", "3MVG9Qx71WrongKey"), ("client_secret", "CsQx71WrongSecret")],
)
def test_auth_failure_shows_neither_the_right_nor_the_wrong_credential(wrong, value, org,
                                                                       tmp_path):
    o = org()
    ids = seed_contacts(o.emu, 5)
    run = run_target(o.config(tmp_path, **{wrong: value}),
                     singer_lines("contacts", _records(ids)), tmp_path)
    assert run.returncode == 1
    assert "Salesforce refused the password login" in run.stderr
    assert no_traceback(run.stderr)
    assert_no_secrets(run, o, extra={"the wrong value": value})
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "failed"


def test_token_endpoint_echoing_the_credentials_is_redacted(org, tmp_path):
    o = org()
    ids = seed_contacts(o.emu, 5)
    oauth = o.emu._app.oauth

    def echoing_token_endpoint(params: dict, basic: Any, base_url: str) -> dict:
        raise OAuthError(
            "invalid_grant",
            f"authentication failure for {params.get('username')} using password "
            f"{params.get('password')} and client {params.get('client_id')} / "
            f"{params.get('client_secret')}",
        )

    oauth.token = echoing_token_endpoint
    run = run_target(o.config(tmp_path), singer_lines("contacts", _records(ids)), tmp_path)
    assert run.returncode == 1
    assert "invalid_grant" in run.stderr
    assert no_traceback(run.stderr)
    assert_no_secrets(run, o)


def test_refused_session_after_reauthentication_shows_no_token(org, tmp_path):
    o = org()
    ids = seed_contacts(o.emu, 400)
    o.emu._app.oauth.tokens.check = lambda token, ttl: TokenCheck("invalid")
    run = run_target(o.config(tmp_path), singer_lines("contacts", _records(ids)), tmp_path)
    assert run.returncode == 1
    assert "freshly issued token" in run.stderr
    assert len(o.issued) == 3  # the first, a re-authentication, and one more (a possible race)
    assert_no_secrets(run, o)


def test_limit_stop_shows_no_secret(org, tmp_path):
    o = org(daily_api_limit=5, initial_api_usage=5)
    ids = seed_contacts(o.emu, 50)
    run = run_target(o.config(tmp_path), singer_lines("contacts", _records(ids)), tmp_path)
    assert run.returncode == 3
    assert "TotalRequests" in run.stderr
    assert_no_secrets(run, o)


@pytest.mark.slow
def test_fault_heavy_run_with_many_reauthentications_shows_no_secret(org, tmp_path):
    o = org(token_ttl_requests=3, http_503_rate=0.08, html_503_rate=0.04, drop_rate=0.02,
            lock_rate=0.05, random_seed=3)
    ids = seed_contacts(o.emu, 1500)
    run = run_target(o.config(tmp_path, batch_size=50, max_concurrency=4),
                     singer_lines("contacts", _records(ids), state_every=300), tmp_path,
                     env={"LOGLEVEL": "DEBUG"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(o.issued) >= 5  # many sessions: each one a secret to keep out of the logs
    assert o.emu.stats()["faults_injected"]["token_expired"] >= 4
    assert_no_secrets(run, o)


def test_a_malformed_line_does_not_echo_the_profile_into_the_log(org, tmp_path):
    o = org()
    ids = seed_contacts(o.emu, 1)
    whole = json.dumps({"type": "RECORD", "stream": "contacts", "record": {
        "crmID": ids[0], "personalEmail": {"address": "jane.private@example.com"}}})
    truncated = whole[:-3]  # the tap died mid-line
    text = singer_lines("contacts", [profile(ids[0], 0)]) + truncated + "\n"
    run = run_target(o.config(tmp_path), text, tmp_path)
    assert run.returncode == 1
    assert "jane.private@example.com" not in run.stderr


def test_an_unparseable_date_is_not_echoed_into_the_log(org, tmp_path):
    o = org()
    ids = seed_contacts(o.emu, 1)
    schema = {"type": "object", "properties": {
        "crmID": {"type": "string"}, "birth": {"type": ["string", "null"], "format": "date"}}}
    config = o.config(tmp_path, field_mappings=[{"source": "birth", "target": "Birthdate"}])
    text = singer_lines("contacts", [{"crmID": ids[0], "birth": "07/03/1985-private"}],
                        schema=schema)
    run = run_target(config, text, tmp_path)
    assert run.returncode == 0
    assert "07/03/1985-private" not in run.stderr
