"""Unit tests for errors.py (contract §3.3 table) and deadletter.py (scrub, DeadLetter)."""

from __future__ import annotations

import datetime
import decimal
import json
from pathlib import Path
from typing import Any

import pytest

from target_salesforce_crm.deadletter import DeadLetter, scrub
from target_salesforce_crm.salesforce.errors import (
    ErrorClass,
    RequestFailed,
    TargetError,
    classify_record_error,
    classify_response,
)

T, A, Q, C, P = (
    ErrorClass.TRANSIENT,
    ErrorClass.AUTH,
    ErrorClass.QUOTA,
    ErrorClass.CONCURRENCY,
    ErrorClass.PERMANENT,
)


# --------------------------------------------------------------------------- classify_response


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        # auth: refresh once and replay
        (401, "INVALID_SESSION_ID", "Session expired or invalid", A),
        (401, None, None, A),
        (401, "INVALID_AUTH_HEADER", "INVALID_HEADER_TYPE", P),
        # quota vs concurrency for REQUEST_LIMIT_EXCEEDED
        (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", Q),
        (403, "REQUEST_LIMIT_EXCEEDED", None, Q),
        (403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.", C),
        (403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentRequest Limit exceeded.", C),
        # permanent request-level errors
        (403, "API_DISABLED_FOR_ORG", "API is not enabled for this Organization or Partner", P),
        (403, "INSUFFICIENT_ACCESS", "insufficient access rights", P),
        (404, "NOT_FOUND", "The requested resource does not exist", P),
        (405, "METHOD_NOT_ALLOWED", "HTTP Method 'PATCH' not allowed.", P),
        (400, "JSON_PARSER_ERROR", "Unexpected character", P),
        (400, "INVALID_FIELD", "No such column 'Foo__c' on sobject of type Contact", P),
        (400, "INVALID_TYPE", "sObject type 'Foo' is not supported.", P),
        (400, "MALFORMED_ID", "Contact ID: id value of incorrect type", P),
        (400, "EXCEEDED_ID_LIMIT", "record limit reached.", P),
        (400, None, None, P),
        (415, None, None, P),
        # transient: statuses
        (500, None, None, T),
        (502, None, None, T),
        (503, None, None, T),
        (504, None, None, T),
        (420, None, None, T),
        (429, None, None, T),
        (406, None, None, T),
        # transient: codes, whatever the status
        (503, "SERVER_UNAVAILABLE", "server too busy", T),
        (500, "UNKNOWN_EXCEPTION", "An unexpected error occurred.", T),
        (400, "QUERY_TIMEOUT", "Your query request was running for too long.", T),
        (400, "REQUEST_RUNNING_TOO_LONG", "Your request was running for too long", T),
    ],
)
def test_classify_response_follows_the_contract_table(
    status: int, code: str | None, message: str | None, expected: ErrorClass
) -> None:
    assert classify_response(status, code, message) is expected


def test_request_level_unable_to_lock_row_is_transient() -> None:
    message = "unable to obtain exclusive access to this record"
    assert classify_response(400, "UNABLE_TO_LOCK_ROW", message) is T


# --------------------------------------------------------------------------- classify_record_error


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("UNABLE_TO_LOCK_ROW", T),
        ("STORAGE_LIMIT_EXCEEDED", Q),
        ("REQUIRED_FIELD_MISSING", P),
        ("STRING_TOO_LONG", P),
        ("INVALID_EMAIL_ADDRESS", P),
        ("MALFORMED_ID", P),
        ("INVALID_TYPE_ON_FIELD_IN_RECORD", P),
        ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", P),
        ("INVALID_FIELD_FOR_INSERT_UPDATE", P),
        ("DUPLICATE_VALUE", P),
        ("DUPLICATE_EXTERNAL_ID", P),
        ("DUPLICATES_DETECTED", P),
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", P),
        ("INVALID_CROSS_REFERENCE_KEY", P),
        ("ENTITY_IS_DELETED", P),
        ("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", P),
        ("INSUFFICIENT_ACCESS_OR_READONLY", P),
        ("SOMETHING_NEW", P),
    ],
)
def test_classify_record_error(code: str, expected: ErrorClass) -> None:
    assert classify_record_error(code) is expected


# --------------------------------------------------------------------------- RequestFailed


@pytest.mark.parametrize(
    "code",
    [
        "JSON_PARSER_ERROR",
        "INVALID_FIELD",
        "MALFORMED_ID",
        "STRING_TOO_LONG",
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "INVALID_EMAIL_ADDRESS",
        "REQUIRED_FIELD_MISSING",
    ],
)
def test_request_level_data_errors(code: str) -> None:
    assert RequestFailed(400, code, "m").is_data_error is True


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "INVALID_TYPE"),
        (400, "EXCEEDED_ID_LIMIT"),
        (400, None),
        (404, "NOT_FOUND"),
        (403, "INVALID_FIELD"),  # a data code with the wrong status is not a data error
        (500, "MALFORMED_ID"),
        (401, "INVALID_AUTH_HEADER"),
    ],
)
def test_request_level_non_data_errors(status: int, code: str | None) -> None:
    assert RequestFailed(status, code, "m").is_data_error is False


def test_request_failed_carries_status_code_and_message() -> None:
    exc = RequestFailed(404, "NOT_FOUND", "Salesforce refused PATCH x: HTTP 404 NOT_FOUND")
    assert exc.status == 404
    assert exc.error_code == "NOT_FOUND"
    assert str(exc) == "Salesforce refused PATCH x: HTTP 404 NOT_FOUND"
    assert isinstance(exc, TargetError)


# --------------------------------------------------------------------------- scrub


def test_scrub_removes_an_echoed_value() -> None:
    payload = {"attributes": {"type": "Contact"}, "id": "003A0000006Vm9rIAC",
               "LastName": "Wolfeschlegelsteinhausenbergerdorff"}
    message = ("Last Name: data value too large: Wolfeschlegelsteinhausenbergerdorff "
               "(max length=80)")
    assert scrub(message, payload) == "Last Name: data value too large: <value> (max length=80)"


def test_scrub_removes_every_echoed_field_and_every_occurrence() -> None:
    payload = {"Email": "bad@@example", "FirstName": "Augusta"}
    message = "Email: invalid email address: bad@@example (Augusta); again bad@@example"
    result = scrub(message, payload)
    assert "bad@@example" not in result
    assert "Augusta" not in result
    assert result == "Email: invalid email address: <value> (<value>); again <value>"


def test_scrub_keeps_the_record_id_and_unechoed_text() -> None:
    payload = {"attributes": {"type": "Contact"}, "id": "003A0000006Vm9rIAC", "LastName": "Doe"}
    message = "Contact ID: id value of incorrect type: 003A0000006Vm9rIAC"
    assert scrub(message, payload) == message


def test_scrub_without_echo_is_unchanged() -> None:
    payload = {"LastName": "Lovelace"}
    assert scrub("Required fields are missing: [LastName]", payload) == (
        "Required fields are missing: [LastName]"
    )


def test_scrub_handles_a_value_contained_in_another() -> None:
    payload = {"FirstName": "anna", "Email": "annabelle.private@example"}
    message = "Email: invalid email address: annabelle.private@example"
    result = scrub(message, payload)
    assert "belle.private@example" not in result
    assert result == "Email: invalid email address: <value>"


# --------------------------------------------------------------------------- DeadLetter


def write(dl: DeadLetter, **overrides: Any) -> None:
    entry: dict[str, Any] = {
        "stream": "profiles",
        "object_type": "Contact",
        "record_id": "003A0000006Vm9rIAC",
        "code": "STRING_TOO_LONG",
        "message": "Last Name: data value too large: <value> (max length=80)",
        "fields": ("LastName",),
        "origin": "salesforce",
        "record": {"crmID": "003A0000006Vm9r", "person": {"name": {"lastName": "x" * 90}}},
    }
    entry.update(overrides)
    dl.write(**entry)


def read_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_dead_letter_writes_one_json_line_per_call(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "rejected.jsonl"
    dl = DeadLetter(str(path))
    write(dl)
    write(dl, record_id=None, code="MISSING_ID", message="the record has no Salesforce Id",
          fields=["Id"], origin="target", record={"crmID": None})
    dl.close()
    assert dl.count == 2
    first, second = read_lines(path)
    assert first["stream"] == "profiles"
    assert first["object"] == "Contact"
    assert first["id"] == "003A0000006Vm9rIAC"
    assert first["error_code"] == "STRING_TOO_LONG"
    assert first["message"] == "Last Name: data value too large: <value> (max length=80)"
    assert first["fields"] == ["LastName"]
    assert first["origin"] == "salesforce"
    assert first["record"] == {
        "crmID": "003A0000006Vm9r", "person": {"name": {"lastName": "x" * 90}},
    }
    stamp = datetime.datetime.fromisoformat(first["rejected_at"])
    assert stamp.tzinfo is not None
    assert second["id"] is None
    assert second["error_code"] == "MISSING_ID"
    assert second["fields"] == ["Id"]
    assert second["record"] == {"crmID": None}


def test_dead_letter_serializes_decimal_and_datetime_values(tmp_path: Path) -> None:
    path = tmp_path / "rejected.jsonl"
    dl = DeadLetter(str(path))
    aware = datetime.datetime(2024, 5, 1, 10, 30, tzinfo=datetime.timezone.utc)
    write(
        dl,
        record={
            "score": decimal.Decimal("12.5"),
            "visits": decimal.Decimal("3"),
            "seen": aware,
            "naive": datetime.datetime(2024, 5, 1, 10, 30),
            "birth": datetime.date(1815, 12, 10),
            "at": datetime.time(8, 15),
            "name": "Zoë",
        },
    )
    dl.close()
    (line,) = read_lines(path)
    assert line["record"] == {
        "score": 12.5,
        "visits": 3,
        "seen": "2024-05-01T10:30:00+00:00",
        "naive": "2024-05-01T10:30:00",
        "birth": "1815-12-10",
        "at": "08:15:00",
        "name": "Zoë",
    }
    assert isinstance(line["record"]["visits"], int)
    assert "Zoë" in path.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes


def test_dead_letter_appends_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "rejected.jsonl"
    for code in ("A_CODE", "B_CODE"):
        dl = DeadLetter(str(path))
        write(dl, code=code)
        dl.close()
    assert [line["error_code"] for line in read_lines(path)] == ["A_CODE", "B_CODE"]


def test_dead_letter_sync_makes_lines_visible_before_close(tmp_path: Path) -> None:
    path = tmp_path / "rejected.jsonl"
    dl = DeadLetter(str(path))
    write(dl)
    dl.sync()
    assert len(read_lines(path)) == 1
    write(dl)
    dl.sync()
    assert len(read_lines(path)) == 2
    dl.close()
    dl.close()  # closing twice is harmless


def test_dead_letter_without_a_path_only_counts(tmp_path: Path) -> None:
    dl = DeadLetter(None)
    write(dl)
    write(dl)
    dl.sync()
    dl.close()
    assert dl.count == 2
    assert list(tmp_path.iterdir()) == []


def test_dead_letter_creates_no_file_until_the_first_rejection(tmp_path: Path) -> None:
    path = tmp_path / "rejected.jsonl"
    dl = DeadLetter(str(path))
    dl.sync()
    dl.close()
    assert not path.exists()
    assert dl.count == 0
