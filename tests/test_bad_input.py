"""A catalogue of bad input, each with its expected clear outcome (SPEC §2 config contract,
§3 record handling; contract §2.6 OAuth errors).

Record-level cases share one CLI run per ``string_overflow`` policy: every case writes to its
own Contact, so each parametrized test checks its own dead-letter line and its own record in
the org, and the good records around them must all land. Config, auth and host cases each run
the CLI on their own and must stop with one clear message, exit code 1 and no traceback.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from _reliability import no_traceback
from conftest import (
    PROFILE_SCHEMA,
    SEGMENT_FIELDS,
    base_config,
    make_id,
    profile,
    run_target,
    seed_contacts,
    seed_leads,
    singer_lines,
)

from target_salesforce_crm.emulator import Emulator

SCHEMA = {
    "type": "object",
    "properties": {
        **PROFILE_SCHEMA["properties"],
        "case": {"type": "string"},
        "score": {"type": ["number", "null"]},
        "birth": {"type": ["string", "null"], "format": "date"},
    },
}
FIELD_MAPPINGS = [
    {"source": "person.name.lastName", "target": "LastName"},
    {"source": "person.name.firstName", "target": "FirstName"},
    {"source": "personalEmail.address", "target": "Email"},
    {"source": "score", "target": "Loyalty_Score__c"},
    {"source": "birth", "target": "Birthdate"},
]
GOOD_RECORDS = 60

@dataclass
class Ctx:
    """What a case builder may use: its own Contact Id and the org's other Ids."""

    record_id: str
    lead_id: str


@dataclass
class Case:
    build: Callable[[Ctx], dict[str, Any]]
    code: str | tuple[str, ...] | None  # dead-letter code(s), or None: the record must land
    fields: list[str] | None = field(default_factory=list)  # None: not checked
    stored: dict[str, Any] = field(default_factory=dict)  # expected values in the org
    reject: Case | None = None  # the outcome under string_overflow=reject, if different
    bug: str | None = None


def _base(ctx: Ctx, **changes: Any) -> dict[str, Any]:
    record = profile(ctx.record_id, 7, seg_loyal="realized")
    record.update(changes)
    return record


def _with_name(ctx: Ctx, **name: Any) -> dict[str, Any]:
    record = _base(ctx)
    record["person"]["name"].update(name)
    return record


def _with_email(ctx: Ctx, email: Any) -> dict[str, Any]:
    record = _base(ctx)
    record["personalEmail"]["address"] = email
    return record


def _with_status(ctx: Ctx, status: Any) -> dict[str, Any]:
    record = _base(ctx)
    record["segmentMembership"]["ups"]["seg-loyal"]["status"] = status
    return record


def _bad_checksum(record_id: str) -> str:
    return record_id[:17] + ("A" if record_id[17] != "A" else "B")


UNCHANGED = {"LastName": "OLD", "Seg_Loyal__c": None}  # "OLD": the seeded value
LONG_EMAIL = "x" * 80 + "@example.com"

RECORD_CASES: dict[str, Case] = {
    "missing_id": Case(lambda c: {k: v for k, v in _base(c).items() if k != "crmID"},
                       "MISSING_ID", ["Id"]),
    "null_id": Case(lambda c: _base(c, crmID=None), "MISSING_ID", ["Id"]),
    "blank_id": Case(lambda c: _base(c, crmID="   "), "MISSING_ID", ["Id"]),
    "malformed_id": Case(lambda c: _base(c, crmID="003NOTANID"), "MALFORMED_ID", ["Id"]),
    "id_with_bad_checksum": Case(lambda c: _base(c, crmID=_bad_checksum(c.record_id)),
                                 "MALFORMED_ID", ["Id"], UNCHANGED),
    "lead_id_for_a_contact": Case(lambda c: _base(c, crmID=c.lead_id), "WRONG_OBJECT_ID",
                                  ["Id"]),
    "account_id_for_a_contact": Case(lambda c: _base(c, crmID=make_id("001", 42)),
                                     "WRONG_OBJECT_ID", ["Id"]),
    "unknown_id": Case(lambda c: _base(c, crmID=make_id("003", 777777)), "ENTITY_IS_DELETED"),
    "fifteen_char_id_lands": Case(lambda c: _base(c, crmID=c.record_id[:15]), None,
                                  stored={"LastName": "Last7", "Seg_Loyal__c": "realized"}),
    "lower_case_18_char_id_lands": Case(lambda c: _base(c, crmID=c.record_id.lower()), None,
                                        stored={"LastName": "Last7"}),
    "empty_last_name": Case(lambda c: _with_name(c, lastName=""), "REQUIRED_FIELD_MISSING",
                            ["LastName"], UNCHANGED),
    "over_long_first_name": Case(
        lambda c: _with_name(c, firstName="F" * 60), None,
        stored={"FirstName": "F" * 40, "LastName": "Last7"},
        reject=Case(_base, "STRING_TOO_LONG", ["FirstName"],
                    {"FirstName": "Before", "LastName": "OLD"})),
    "over_long_segment_status": Case(
        lambda c: _with_status(c, "s" * 40000), None, stored={"Seg_Loyal__c": "s" * 32768},
        reject=Case(_base, "STRING_TOO_LONG", ["Seg_Loyal__c"], UNCHANGED)),
    "over_long_email_never_truncated": Case(lambda c: _with_email(c, LONG_EMAIL),
                                            "STRING_TOO_LONG", ["Email"], UNCHANGED),
    "invalid_email": Case(lambda c: _with_email(c, "not-an-email"), "INVALID_EMAIL_ADDRESS",
                          ["Email"], UNCHANGED),
    "email_with_a_space": Case(lambda c: _with_email(c, "jane doe@example.com"),
                               "INVALID_EMAIL_ADDRESS", ["Email"], UNCHANGED),
    "object_where_a_string_is_expected": Case(
        lambda c: _with_name(c, lastName={"value": "Doe"}), "INVALID_FIELD_VALUE",
        ["LastName"], UNCHANGED),
    "list_where_a_string_is_expected": Case(lambda c: _with_email(c, ["a@example.com"]),
                                            "INVALID_FIELD_VALUE", ["Email"], UNCHANGED),
    "nan_number": Case(lambda c: _base(c, score=float("nan")), "INVALID_FIELD_VALUE",
                       ["Loyalty_Score__c"], UNCHANGED),
    "infinite_number": Case(lambda c: _base(c, score=float("inf")), "INVALID_FIELD_VALUE",
                            ["Loyalty_Score__c"], UNCHANGED),
    "non_string_segment_status": Case(lambda c: _with_status(c, 5), "INVALID_SEGMENT_STATUS",
                                      ["Seg_Loyal__c"], UNCHANGED),
    "unknown_record_fields_are_ignored": Case(
        lambda c: _base(c, favouriteColour="teal", person={
            "name": {"lastName": "Last7", "nickname": "J"}, "shoeSize": 42}),
        None, stored={"LastName": "Last7", "Seg_Loyal__c": "realized"}),
    "number_lands_as_a_number": Case(lambda c: _base(c, score=87.5), None,
                                     stored={"Loyalty_Score__c": 87.5,
                                             "Formula_Tier__c": "Gold"}),
    "iso_date_lands": Case(lambda c: _base(c, birth="1990-12-31"), None,
                           stored={"Birthdate": "1990-12-31"}),
    # the stream's schema says otherwise: dead-lettered as INVALID_RECORD, nothing written
    "schema_object_given_a_string": Case(lambda c: _base(c, person="Jane Doe"),
                                         "INVALID_RECORD", None, UNCHANGED),
    "schema_number_given_text": Case(lambda c: _base(c, score="high"), "INVALID_RECORD", None,
                                     UNCHANGED),
    "schema_string_given_a_number": Case(lambda c: _base(c, crmID=12345), "INVALID_RECORD",
                                         None),
    "date_breaking_the_schema_format": Case(lambda c: _base(c, birth="31/12/1990"),
                                            ("INVALID_RECORD", "INVALID_FIELD_VALUE"), None,
                                            UNCHANGED),
}


@pytest.fixture(scope="module", params=["truncate", "reject"])
def record_run(request, tmp_path_factory):
    """One run per policy: every record case on its own Contact, between good records."""
    policy = request.param
    directory = tmp_path_factory.mktemp(f"records-{policy}")
    with Emulator(segment_fields=SEGMENT_FIELDS) as emu:
        case_ids = dict(zip(RECORD_CASES, seed_contacts(emu, len(RECORD_CASES)), strict=True))
        good_ids = emu.seed("Contact", [{"LastName": f"Good{n}"} for n in range(GOOD_RECORDS)])
        lead_id = seed_leads(emu, 1)[0]
        records = []
        for n, good_id in enumerate(good_ids):
            records.append(profile(good_id, 1000 + n, seg_news="existing"))
            if n < len(RECORD_CASES):
                name = list(RECORD_CASES)[n]
                record = RECORD_CASES[name].build(Ctx(case_ids[name], lead_id))
                records.append({**record, "case": name})
        config = base_config(emu, directory, string_overflow=policy,
                             field_mappings=FIELD_MAPPINGS)
        run = run_target(config, singer_lines("contacts", records, schema=SCHEMA), directory)
        stored = {name: emu.get("Contact", i) for name, i in case_ids.items()}
        good = [emu.get("Contact", i) for i in good_ids]
        seeded = {name: f"Old{n}" for n, name in enumerate(RECORD_CASES)}
        yield policy, run, stored, good, seeded, len(records)


def test_good_records_around_the_bad_ones_all_land(record_run):
    _, run, _, good, _, total = record_run
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.states == [{"offset": total}]
    assert [g["LastName"] for g in good] == [f"Last{1000 + n}" for n in range(GOOD_RECORDS)]
    assert all(g["Seg_Newsletter__c"] == "existing" for g in good)
    report = run.report
    assert report["status"] == "succeeded"
    assert report["totals"]["rejected"] == len(run.rejected)


def _params() -> list[Any]:
    params = []
    for name, case in RECORD_CASES.items():
        marks = [pytest.mark.xfail(reason=case.bug, strict=True)] if case.bug else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.mark.parametrize("name", _params())
def test_bad_record_has_its_clear_outcome(name, record_run):
    policy, run, stored, _, seeded, _ = record_run
    case = RECORD_CASES[name]
    outcome = case.reject if policy == "reject" and case.reject else case
    lines = [r for r in run.rejected if r["record"].get("case") == name]
    if outcome.code is None:
        assert lines == [], lines
    else:
        codes = {outcome.code} if isinstance(outcome.code, str) else set(outcome.code)
        assert len(lines) == 1, lines
        assert lines[0]["error_code"] in codes
        if outcome.fields is not None:
            assert lines[0]["fields"] == outcome.fields
        assert lines[0]["message"]
    record = stored[name]
    for field_name, value in outcome.stored.items():
        want = seeded[name] if value == "OLD" else value
        assert record.get(field_name) == want, (field_name, record.get(field_name))


# ------------------------------------------------------------------------ config, auth, hosts


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ConfigCase:
    change: Callable[[dict[str, Any]], None]
    phrases: list[str]
    network: bool = False  # False: refused before any network call
    secret: str | None = None  # a value that must not be echoed


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        for key, value in values.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
    return change


def _segments(*mapping_ids: str) -> list[dict[str, str]]:
    return [{"segment_id": f"seg-{n}", "mapping_id": m} for n, m in enumerate(mapping_ids)]


CONFIG_CASES: dict[str, ConfigCase] = {
    "26_segment_mappings": ConfigCase(
        _set(segment_mappings=_segments(*(f"Seg_{n}__c" for n in range(26)))),
        ["at most 25"]),
    "mapping_id_with_a_space": ConfigCase(_set(segment_mappings=_segments("Seg Loyal__c")),
                                          ["'Seg Loyal__c'", "spaces"]),
    "duplicate_mapping_ids": ConfigCase(
        _set(segment_mappings=_segments("Seg_Loyal__c", "seg_loyal")), ["duplicates"]),
    "segment_field_not_in_the_org": ConfigCase(
        _set(segment_mappings=[*_segments("Seg_Loyal__c"),
                               {"segment_id": "vip", "mapping_id": "Seg_Vip"}]),
        ["Seg_Vip__c", "does not exist", "nothing was written"], network=True),
    "field_mapping_target_not_in_the_org": ConfigCase(
        _set(field_mappings=[{"source": "person.name.lastName", "target": "Surname__c"}]),
        ["Surname__c", "does not exist"], network=True),
    "wrong_password": ConfigCase(_set(password="Wr0ng-Passw0rd-71"),
                                 ["username, password and security_token"], network=True,
                                 secret="Wr0ng-Passw0rd-71"),
    "wrong_security_token": ConfigCase(_set(security_token="WRONGTOKEN9931"),
                                       ["security_token"], network=True,
                                       secret="WRONGTOKEN9931"),
    "wrong_client_id": ConfigCase(_set(client_id="3MVG9-wrong-consumer-key"),
                                  ["client_id", "consumer key"], network=True,
                                  secret="3MVG9-wrong-consumer-key"),
    "wrong_client_secret": ConfigCase(_set(client_secret="wrong-consumer-secret-55"),
                                      ["client_secret", "consumer secret"], network=True,
                                      secret="wrong-consumer-secret-55"),
    "password_missing": ConfigCase(_set(password=None), ["needs password"]),
    "unreachable_login_host": ConfigCase(
        lambda config: config.update(login_url=f"http://127.0.0.1:{_closed_port()}"),
        ["could not reach the token endpoint"], network=True),
    "unknown_api_version": ConfigCase(_set(api_version="99.0"), ["api_version", "99.0"],
                                      network=True),
    "malformed_api_version": ConfigCase(_set(api_version="sixty-three"), ["api_version"]),
    "plain_http_to_a_non_loopback_host": ConfigCase(
        _set(login_url="http://acme.my.salesforce.com"), ["non-loopback"]),
    "https_to_a_foreign_host": ConfigCase(_set(login_url="https://login.example.com"),
                                          ["login_url host must be"]),
    "malformed_domain": ConfigCase(_set(login_url=None, domain="acme corp!"),
                                   ["not a valid My Domain"]),
    "domain_with_a_path": ConfigCase(
        _set(login_url=None, domain="https://acme.my.salesforce.com/secur"),
        ["not a valid My Domain"]),
    "unknown_object": ConfigCase(_set(salesforce_id_type="Account"), ["Contact", "Lead"]),
    "batch_size_over_200": ConfigCase(_set(batch_size=500), ["batch_size", "200"]),
    "no_org_chosen": ConfigCase(_set(login_url=None), ["domain", "login_url"]),
}


@pytest.fixture(scope="module")
def org():
    with Emulator(segment_fields=SEGMENT_FIELDS) as emu:
        yield emu, seed_contacts(emu, 5)


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_bad_config_is_refused_with_one_clear_message(name, org, tmp_path):
    emu, ids = org
    case = CONFIG_CASES[name]
    config = base_config(emu, tmp_path)
    case.change(config)
    before = emu.stats()
    records = [profile(i, n, seg_loyal="realized") for n, i in enumerate(ids)]
    run = run_target(config, singer_lines("contacts", records), tmp_path, timeout=120)
    after = emu.stats()

    assert run.returncode == 1
    for phrase in case.phrases:
        assert phrase in run.stderr, phrase
    assert no_traceback(run.stderr), run.stderr[-3000:]
    assert run.states == []
    assert after["collections_calls"] == before["collections_calls"]
    if not case.network:
        assert after["requests"] == before["requests"]
    if case.secret:
        assert case.secret not in run.stderr
        report = tmp_path / "report.json"
        assert not report.exists() or case.secret not in report.read_text()
    assert [emu.get("Contact", i)["LastName"] for i in ids] == [f"Old{n}" for n in range(5)]


@pytest.mark.parametrize(
    ("name", "lines", "phrase"),
    [
        ("malformed_json_line", ['{"type": "RECORD", "stream": "contacts", "record": {"crm'],
         "is not valid JSON"),
        ("record_before_schema", [json.dumps({"type": "RECORD", "stream": "other",
                                              "record": {"crmID": None}})],
         "before a corresponding schema"),
        ("schema_without_properties", [json.dumps({"type": "SCHEMA", "stream": "other",
                                                   "schema": {"type": "object"},
                                                   "key_properties": []})],
         "properties"),
        ("unknown_message_type", [json.dumps({"type": "HELLO"})], "Unknown message type"),
    ],
)
def test_broken_singer_stream_stops_the_run_without_a_state(name, lines, phrase, org,
                                                           tmp_path):
    emu, ids = org
    good = singer_lines("contacts", [profile(i, n) for n, i in enumerate(ids)])
    good = good.rsplit("\n", 2)[0] + "\n"  # the tap's STATE never comes
    run = run_target(base_config(emu, tmp_path), good + "\n".join(lines) + "\n", tmp_path)

    assert run.returncode == 1
    assert phrase in run.stderr
    assert run.states == []  # nothing is promised
    assert run.report["status"] == "failed"


def test_dead_letters_sent_to_stderr_do_not_crash_the_run(org, tmp_path):
    emu, ids = org
    config = base_config(emu, tmp_path, rejected_records_path="/dev/stderr")
    records = [profile(ids[0], 0), profile("003NOTANID", 1), profile(ids[1], 1)]
    run = run_target(config, singer_lines("contacts", records), tmp_path)
    assert run.returncode == 0
    assert run.states == [{"offset": 3}]
    assert '"error_code": "MALFORMED_ID"' in run.stderr
    assert no_traceback(run.stderr)


def test_a_config_refused_at_start_up_still_writes_a_failed_run_report(org, tmp_path):
    emu, ids = org
    config = base_config(emu, tmp_path, segment_mappings=_segments("Seg Loyal__c"))
    run = run_target(config, singer_lines("contacts", [profile(ids[0], 0)]), tmp_path)
    assert run.returncode == 1
    report = run.report
    assert report["status"] == "failed"
    assert "spaces" in report["error"]
