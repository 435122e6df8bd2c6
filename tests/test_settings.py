"""Unit tests for target_salesforce_crm/settings.py (SPEC §2: configuration contract)."""

from __future__ import annotations

from typing import Any

import pytest

from target_salesforce_crm.login_hosts import login_host_problem
from target_salesforce_crm.settings import (
    FieldMapping,
    SegmentMapping,
    SettingsError,
    login_url_from_domain,
    normalize_mapping_id,
    parse_settings,
)

PASSWORD = "hunter2-very-secret"
CLIENT_SECRET = "consumer-secret-xyz"

BASE: dict[str, Any] = {
    "domain": "acme",
    "username": "integration@acme.example",
    "password": PASSWORD,
    "security_token": "tok-abcdef",
    "client_id": "consumer-key-123",
    "client_secret": CLIENT_SECRET,
}


def config(**overrides: Any) -> dict[str, Any]:
    result = dict(BASE)
    for key, value in overrides.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def problems_of(cfg: dict[str, Any]) -> list[str]:
    with pytest.raises(SettingsError) as info:
        parse_settings(cfg)
    problems = info.value.problems
    assert problems, "a SettingsError must list at least one problem"
    # the exception text is the problems joined, so a caller printing it sees every one
    assert str(info.value) == "; ".join(problems)
    return problems


def only_problem(cfg: dict[str, Any]) -> str:
    problems = problems_of(cfg)
    assert len(problems) == 1, problems
    return problems[0]


# --------------------------------------------------------------------------- defaults


def test_defaults_applied_for_minimal_password_config() -> None:
    settings = parse_settings(config())
    assert settings.auth_flow == "password"
    assert settings.login_url == "https://acme.my.salesforce.com"
    assert settings.api_version == "63.0"
    assert settings.object_type == "Contact"
    assert settings.stream_object_types == {}
    assert settings.operation == "update"
    assert settings.id_source == "crmID"
    assert settings.external_id_field is None
    assert settings.external_id_source is None
    assert settings.segment_mappings == ()
    assert settings.segment_membership_path == "segmentMembership.ups"
    assert settings.segment_status_values == {}
    assert settings.string_overflow == "truncate"
    assert settings.batch_size == 200
    assert settings.max_concurrency == 4
    assert settings.api_usage_limit_percent == 90
    assert settings.rejected_records_path is None
    assert settings.run_report_path is None
    assert settings.dry_run is False


def test_default_field_mappings_are_the_reference_mapping_per_object() -> None:
    settings = parse_settings(config())
    assert settings.mappings_for("Contact") == (
        FieldMapping("person.name.lastName", "LastName"),
        FieldMapping("person.name.firstName", "FirstName"),
        FieldMapping("personalEmail.address", "Email"),
    )
    assert settings.mappings_for("Lead") == (
        FieldMapping("person.name.lastName", "LastName"),
        FieldMapping("b2b.companyName", "Company"),
        FieldMapping("personalEmail.address", "Email"),
    )


def test_configured_field_mappings_replace_the_reference_for_every_object() -> None:
    settings = parse_settings(
        config(field_mappings=[{"source": "profile.title", "target": "Title"}])
    )
    expected = (FieldMapping("profile.title", "Title"),)
    assert settings.mappings_for("Contact") == expected
    assert settings.mappings_for("Lead") == expected


def test_explicit_values_are_kept() -> None:
    settings = parse_settings(
        config(
            salesforce_id_type="Lead",
            stream_object_types={"leads": "Lead", "people": "Contact"},
            api_version="v64.0",
            id_source="ids.salesforce",
            segment_membership_path="segments",
            segment_status_values={"realized": "Member", "exited": "Left"},
            string_overflow="reject",
            batch_size=50,
            max_concurrency=2,
            api_usage_limit_percent=75.5,
            rejected_records_path="/tmp/rejected.jsonl",
            run_report_path="/tmp/report.json",
            dry_run=True,
        )
    )
    assert settings.object_type == "Lead"
    assert settings.object_for_stream("leads") == "Lead"
    assert settings.object_for_stream("people") == "Contact"
    assert settings.object_for_stream("unlisted") == "Lead"
    assert settings.api_version == "64.0"  # a leading 'v' is accepted and dropped
    assert settings.id_source == "ids.salesforce"
    assert settings.segment_membership_path == "segments"
    assert settings.segment_status_values == {"realized": "Member", "exited": "Left"}
    assert settings.string_overflow == "reject"
    assert settings.batch_size == 50
    assert settings.max_concurrency == 2
    assert settings.api_usage_limit_percent == 75.5
    assert settings.rejected_records_path == "/tmp/rejected.jsonl"
    assert settings.run_report_path == "/tmp/report.json"
    assert settings.dry_run is True


def test_credentials_collected_and_hidden_from_repr() -> None:
    settings = parse_settings(config())
    assert settings.credentials == {
        "username": "integration@acme.example",
        "password": PASSWORD,
        "security_token": "tok-abcdef",
        "client_id": "consumer-key-123",
        "client_secret": CLIENT_SECRET,
    }
    text = repr(settings)
    assert PASSWORD not in text
    assert CLIENT_SECRET not in text
    assert "tok-abcdef" not in text


def test_upsert_settings_kept() -> None:
    settings = parse_settings(
        config(operation="upsert", external_id_field="Ext_Id__c", external_id_source="extId")
    )
    assert settings.operation == "upsert"
    assert settings.external_id_field == "Ext_Id__c"
    assert settings.external_id_source == "extId"


# --------------------------------------------------------------------------- credentials


REQUIRED = {
    "password": ("username", "password", "client_id", "client_secret"),
    "client_credentials": ("client_id", "client_secret"),
    "jwt": ("client_id", "username", "private_key"),
    "refresh_token": ("client_id", "refresh_token"),
}
ALL_CREDENTIALS = {
    "username": "u@example.com",
    "password": PASSWORD,
    "client_id": "ck",
    "client_secret": CLIENT_SECRET,
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----",
    "refresh_token": "5Aep861-refresh",
}


@pytest.mark.parametrize("flow", sorted(REQUIRED))
def test_each_flow_accepts_exactly_its_required_credentials(flow: str) -> None:
    cfg = {"domain": "acme", "auth_flow": flow}
    cfg.update({name: ALL_CREDENTIALS[name] for name in REQUIRED[flow]})
    settings = parse_settings(cfg)
    assert settings.auth_flow == flow
    assert set(settings.credentials) == set(REQUIRED[flow])


@pytest.mark.parametrize("flow", sorted(REQUIRED))
def test_each_flow_names_all_its_missing_credentials_in_one_message(flow: str) -> None:
    problem = only_problem({"domain": "acme", "auth_flow": flow})
    assert f"auth_flow '{flow}'" in problem
    for name in REQUIRED[flow]:
        assert name in problem


@pytest.mark.parametrize(
    ("flow", "missing"),
    [(flow, name) for flow, names in REQUIRED.items() for name in names],
)
def test_a_single_missing_credential_is_named(flow: str, missing: str) -> None:
    cfg = {"domain": "acme", "auth_flow": flow}
    cfg.update({name: ALL_CREDENTIALS[name] for name in REQUIRED[flow] if name != missing})
    problem = only_problem(cfg)
    assert problem == f"auth_flow '{flow}' needs {missing} (not set)"


def test_empty_string_credential_counts_as_missing() -> None:
    problem = only_problem(config(password=""))
    assert problem == "auth_flow 'password' needs password (not set)"


def test_security_token_is_not_required_for_password_flow() -> None:
    settings = parse_settings(config(security_token=None))
    assert "security_token" not in settings.credentials


def test_unknown_auth_flow_refused() -> None:
    problem = only_problem(config(auth_flow="saml"))
    assert "auth_flow 'saml'" in problem
    assert "password, client_credentials, jwt, refresh_token" in problem


def test_credential_values_never_appear_in_problems() -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(
            config(
                client_secret=None,
                domain="evil.example/x",
                salesforce_id_type="Account",
                batch_size=500,
            )
        )
    text = str(info.value)
    assert PASSWORD not in text
    assert "tok-abcdef" not in text
    assert "consumer-key-123" not in text


# --------------------------------------------------------------------------- objects / operation


def test_unknown_object_refused() -> None:
    problem = only_problem(config(salesforce_id_type="Account"))
    assert problem.startswith("salesforce_id_type 'Account'")
    assert "Contact, Lead" in problem


def test_unknown_stream_object_refused_naming_the_stream() -> None:
    problem = only_problem(config(stream_object_types={"accounts": "Account", "ok": "Lead"}))
    assert "stream_object_types['accounts']" in problem
    assert "'Account'" in problem


def test_upsert_needs_external_id_field_and_source() -> None:
    problems = problems_of(config(operation="upsert"))
    assert len(problems) == 2
    assert any("external_id_field" in p for p in problems)
    assert any("external_id_source" in p for p in problems)


def test_upsert_external_id_field_must_be_an_api_name() -> None:
    problem = only_problem(
        config(operation="upsert", external_id_field="Ext Id", external_id_source="extId")
    )
    assert problem == "external_id_field 'Ext Id' is not a field API name"


def test_field_mapping_entries_validated() -> None:
    problems = problems_of(
        config(
            field_mappings=[
                {"source": "a.b", "target": "Title"},
                {"source": "a.c"},
                {"source": "a.d", "target": "Bad Name"},
            ]
        )
    )
    assert problems == [
        "field_mappings[1] needs both 'source' and 'target'",
        "field_mappings[2].target 'Bad Name' is not a field API name",
    ]


# --------------------------------------------------------------------------- numeric ranges


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("batch_size", 201, "batch_size 201 must be between 1 and 200"),
        ("batch_size", -1, "batch_size -1 must be between 1 and 200"),
        ("max_concurrency", -2, "max_concurrency -2 must be at least 1"),
        ("api_usage_limit_percent", 150, "api_usage_limit_percent 150 must be between 1 and 100"),
        ("api_usage_limit_percent", 0.5, "api_usage_limit_percent 0.5 must be between 1 and 100"),
        ("string_overflow", "drop", "string_overflow 'drop' must be 'truncate' or 'reject'"),
        ("api_version", "63", "api_version '63' must look like '63.0'"),
        ("api_version", "latest", "api_version 'latest' must look like '63.0'"),
    ],
)
def test_out_of_range_values_refused(key: str, value: Any, needle: str) -> None:
    assert only_problem(config(**{key: value})) == needle


@pytest.mark.parametrize("size", [1, 200])
def test_batch_size_bounds_accepted(size: int) -> None:
    assert parse_settings(config(batch_size=size)).batch_size == size


# --------------------------------------------------------------------------- segment mappings


def segments(n: int) -> list[dict[str, str]]:
    return [{"segment_id": f"seg-{i}", "mapping_id": f"Seg_{i}"} for i in range(n)]


def test_segment_mapping_ids_completed_with_custom_suffix() -> None:
    settings = parse_settings(
        config(
            segment_mappings=[
                {"segment_id": "seg-a", "mapping_id": "Seg_A"},
                {"segment_id": "seg-b", "mapping_id": "Seg_B__c"},
            ]
        )
    )
    assert settings.segment_mappings == (
        SegmentMapping("seg-a", "Seg_A__c"),
        SegmentMapping("seg-b", "Seg_B__c"),
    )


def test_twenty_five_segment_mappings_accepted() -> None:
    settings = parse_settings(config(segment_mappings=segments(25)))
    assert len(settings.segment_mappings) == 25


def test_more_than_twenty_five_segment_mappings_refused() -> None:
    problem = only_problem(config(segment_mappings=segments(26)))
    assert problem.startswith("segment_mappings has 26 entries for segment fields")
    assert "at most 25" in problem


@pytest.mark.parametrize("mapping_id", ["Seg A", "Seg_A ", " Seg_A", "Seg\tA"])
def test_spaces_in_mapping_id_refused(mapping_id: str) -> None:
    problem = only_problem(
        config(
            segment_mappings=[
                {"segment_id": "ok", "mapping_id": "Seg_Ok"},
                {"segment_id": "seg-a", "mapping_id": mapping_id},
            ]
        )
    )
    assert problem.startswith(f"segment_mappings[1].mapping_id {mapping_id!r} contains spaces")
    assert "'_'" in problem


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Seg_A", "Seg_A"),
        ("Seg_A", "Seg_A__c"),
        ("Seg_A__c", "Seg_A"),
        ("Seg_A", "seg_a__C"),
    ],
)
def test_duplicate_mapping_ids_refused(first: str, second: str) -> None:
    problem = only_problem(
        config(
            segment_mappings=[
                {"segment_id": "seg-a", "mapping_id": first},
                {"segment_id": "seg-b", "mapping_id": second},
            ]
        )
    )
    assert problem.startswith(f"segment_mappings[1].mapping_id {second!r} duplicates")
    assert "segment_mappings[0]" in problem


def test_mapping_id_that_is_not_an_api_name_refused() -> None:
    problem = only_problem(config(segment_mappings=[{"segment_id": "s", "mapping_id": "Seg-A"}]))
    assert problem == "segment_mappings[0].mapping_id 'Seg-A' is not a field API name"


def test_segment_mapping_needs_both_ids() -> None:
    problems = problems_of(
        config(segment_mappings=[{"segment_id": "s"}, {"mapping_id": "Seg_B"}])
    )
    assert problems == [
        "segment_mappings[0] needs both 'segment_id' and 'mapping_id'",
        "segment_mappings[1] needs both 'segment_id' and 'mapping_id'",
    ]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Seg_A", "Seg_A__c"),
        ("Seg_A__c", "Seg_A__c"),
        ("Seg_A__C", "Seg_A__C"),
        ("ns__Seg_A__c", "ns__Seg_A__c"),
    ],
)
def test_normalize_mapping_id(given: str, expected: str) -> None:
    assert normalize_mapping_id(given) == expected


# --------------------------------------------------------------------------- domain


@pytest.mark.parametrize(
    ("domain", "url"),
    [
        ("acme", "https://acme.my.salesforce.com"),
        ("acme--uat.sandbox", "https://acme--uat.sandbox.my.salesforce.com"),
        ("acme.my.salesforce.com", "https://acme.my.salesforce.com"),
        ("acme--uat.sandbox.my.salesforce.com", "https://acme--uat.sandbox.my.salesforce.com"),
        ("d5i000000isb4eak-dev-ed", "https://d5i000000isb4eak-dev-ed.my.salesforce.com"),
        ("acme-dev-ed.develop", "https://acme-dev-ed.develop.my.salesforce.com"),
        ("ACME", "https://acme.my.salesforce.com"),
        ("  acme  ", "https://acme.my.salesforce.com"),
        ("a" * 40, f"https://{'a' * 40}.my.salesforce.com"),
        ("login.salesforce.com", "https://login.salesforce.com"),
        ("test.salesforce.com", "https://test.salesforce.com"),
    ],
)
def test_valid_domains_give_the_token_host(domain: str, url: str) -> None:
    assert login_url_from_domain(domain) == url
    assert parse_settings(config(domain=domain)).login_url == url


@pytest.mark.parametrize(
    "domain",
    [
        "evil.example/x",
        "a.my.salesforce.com.evil.example",
        "user@host",
        "user@acme.my.salesforce.com",
        "https://acme.my.salesforce.com:8443",
        "https://acme.my.salesforce.com",
        "acme.my.salesforce.com:443",
        "acme.my.salesforce.com/path",
        "acme?x=1",
        "evil.example",
        "-acme",
        "acme-",
        "a" * 41,
        "root",
        "status-page",
        "acme..my.salesforce.com",
        "acme corp",
        "",
    ],
)
def test_malformed_domains_refused(domain: str) -> None:
    with pytest.raises(SettingsError) as info:
        login_url_from_domain(domain)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"domain {domain!r} is not a valid My Domain")


@pytest.mark.parametrize(
    "domain", ["evil.example/x", "a.my.salesforce.com.evil.example", "user@host"]
)
def test_malformed_domain_refused_by_parse_settings(domain: str) -> None:
    problem = only_problem(config(domain=domain))
    assert problem.startswith(f"domain {domain!r}")


def test_neither_domain_nor_login_url_refused() -> None:
    problem = only_problem(config(domain=None))
    assert "domain" in problem
    assert "login_url" in problem


# --------------------------------------------------------------------------- login_url


@pytest.mark.parametrize(
    "url",
    [
        "https://login.salesforce.com",
        "https://test.salesforce.com",
        "https://login.salesforce.com/",
        "https://acme.my.salesforce.com",
        "https://acme--uat.sandbox.my.salesforce.com",
        "https://acme.my.salesforce.com:443",
        "http://127.0.0.1:8080",
        "http://127.0.0.1",
        "http://localhost:1",
        "http://[::1]:9",
    ],
)
def test_acceptable_login_urls(url: str) -> None:
    assert login_host_problem(url) is None


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://login.salesforce.com", "plain http:// to a non-loopback host"),
        ("http://acme.my.salesforce.com", "plain http:// to a non-loopback host"),
        ("http://localhost.evil.example:8080", "plain http:// to a non-loopback host"),
        ("http://127.0.0.1.nip.io", "plain http:// to a non-loopback host"),
        ("http://10.0.0.1:8080", "plain http:// to a non-loopback host"),
        ("https://acme.my.salesforce.com:8443", "must not carry a port"),
        ("https://login.salesforce.com/services/oauth2/token", "no path, query or fragment"),
        ("https://login.salesforce.com?next=evil", "no path, query or fragment"),
        ("https://login.salesforce.com#frag", "no path, query or fragment"),
        ("https://user@acme.my.salesforce.com", "user information"),
        ("http://user@127.0.0.1:8080", "user information"),
        ("https://evil.example", "host must be"),
        ("https://a.my.salesforce.com.evil.example", "host must be"),
        ("https://login.salesforce.com.evil.example", "host must be"),
        ("ftp://login.salesforce.com", "must start with https://"),
        ("http://127.0.0.1:99999", "not a valid URL"),
    ],
)
def test_unsafe_or_malformed_login_urls_refused(url: str, needle: str) -> None:
    problem = login_host_problem(url)
    assert problem is not None
    assert problem.startswith("login_url")
    assert needle in problem


def test_login_url_without_scheme_refused() -> None:
    assert login_host_problem("login.salesforce.com") is not None


def test_login_url_wins_over_domain_and_loses_trailing_slash() -> None:
    settings = parse_settings(config(login_url="http://127.0.0.1:8080/", domain="acme"))
    assert settings.login_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    "url",
    [
        "http://acme.my.salesforce.com",
        "https://login.salesforce.com/services/oauth2/token",
        "https://login.salesforce.com?x=1",
        "https://acme.my.salesforce.com:8443",
    ],
)
def test_bad_login_url_refused_by_parse_settings(url: str) -> None:
    problem = only_problem(config(login_url=url))
    assert problem == login_host_problem(url)


def test_invalid_url_message_does_not_echo_user_information() -> None:
    problem = login_host_problem("https://user:s3cr3t-pass@acme.my.salesforce.com:99999")
    assert problem is not None
    assert "s3cr3t-pass" not in problem


# --------------------------------------------------------------------------- many problems


def test_several_problems_reported_together_one_message_each() -> None:
    problems = problems_of(
        {
            "auth_flow": "jwt",
            "domain": "a.my.salesforce.com.evil.example",
            "salesforce_id_type": "Account",
            "operation": "upsert",
            "segment_mappings": [
                *segments(25),
                {"segment_id": "dup", "mapping_id": "Seg_0__c"},
                {"segment_id": "spaced", "mapping_id": "Seg Spaced"},
            ],
            "batch_size": 500,
            "string_overflow": "drop",
        }
    )
    expected_starts = [
        "domain 'a.my.salesforce.com.evil.example'",
        "auth_flow 'jwt' needs client_id, username, private_key",
        "salesforce_id_type 'Account'",
        "operation 'upsert' needs external_id_field",
        "operation 'upsert' needs external_id_source",
        "segment_mappings has 27 entries",
        "segment_mappings[25].mapping_id 'Seg_0__c' duplicates segment_mappings[0]",
        "segment_mappings[26].mapping_id 'Seg Spaced' contains spaces",
        "batch_size 500",
        "string_overflow 'drop'",
    ]
    assert len(problems) == len(expected_starts), problems
    for start in expected_starts:
        assert sum(p.startswith(start) for p in problems) == 1, (start, problems)


def test_http_to_non_loopback_and_missing_credentials_reported_together() -> None:
    problems = problems_of({"login_url": "http://login.salesforce.com"})
    assert len(problems) == 2
    assert problems[0].startswith("login_url uses plain http://")
    assert problems[1] == (
        "auth_flow 'password' needs username, password, client_id, client_secret (not set)"
    )


def test_client_credentials_on_a_generic_login_host_is_refused():
    with pytest.raises(SettingsError) as caught:
        parse_settings({"auth_flow": "client_credentials", "client_id": "ck", "client_secret": "cs",
                        "login_url": "https://login.salesforce.com"})
    assert any("My Domain" in problem for problem in caught.value.problems)
