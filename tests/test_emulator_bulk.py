"""Bulk API 2.0 ingest in the emulator, over real HTTP on loopback (contract §7)."""

from __future__ import annotations

import csv
import io
import time

import pytest
import requests

from target_salesforce_crm.emulator import Emulator, make_id
from target_salesforce_crm.emulator.bulk_rows import normalise_datetime
from target_salesforce_crm.emulator.cli import build_parser

V = "v60.0"
LOGIN = {"grant_type": "password", "client_id": "emulator-consumer-key",
         "client_secret": "emulator-consumer-secret", "username": "integration@example.com",
         "password": "emulator-passwordEMULATORTOKEN"}
CSV_TYPE = {"Content-Type": "text/csv"}


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
def emu():
    with Emulator(random_seed=7) as emulator:
        yield emulator


@pytest.fixture
def session(emu):
    response = requests.post(emu.url + "/services/oauth2/token", data=LOGIN, timeout=10)
    assert response.status_code == 200, response.text
    with requests.Session() as http:
        http.headers["Authorization"] = "Bearer " + response.json()["access_token"]
        yield http


def url(emu: Emulator, path: str = "") -> str:
    return f"{emu.url}/services/data/{V}/jobs/ingest{path}"


def create(session, emu, **job) -> dict:
    body = {"object": "Contact", "operation": "update", "contentType": "CSV", **job}
    response = session.post(url(emu), json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def upload(session, emu, job_id: str, data: str | bytes) -> requests.Response:
    body = data.encode() if isinstance(data, str) else data
    return session.put(url(emu, f"/{job_id}/batches"), data=body, headers=CSV_TYPE, timeout=60)


def set_state(session, emu, job_id: str, state: str) -> requests.Response:
    return session.patch(url(emu, f"/{job_id}"), json={"state": state}, timeout=10)


def wait_done(session, emu, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = session.get(url(emu, f"/{job_id}"), timeout=10).json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.02)


def result_rows(session, emu, job_id: str, kind: str) -> list[dict]:
    response = session.get(url(emu, f"/{job_id}/{kind}/"), timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode(), newline="")))


def run(session, emu, data: str | bytes, **job) -> tuple[dict, list, list, list]:
    """Create, upload, close and wait; the job info and its three result sets."""
    job_id = create(session, emu, **job)["id"]
    assert upload(session, emu, job_id, data).status_code == 201
    assert set_state(session, emu, job_id, "UploadComplete").status_code == 200
    info = wait_done(session, emu, job_id)
    return (info, result_rows(session, emu, job_id, "successfulResults"),
            result_rows(session, emu, job_id, "failedResults"),
            result_rows(session, emu, job_id, "unprocessedrecords"))


def to_csv(header: list[str], rows: list[list[str]], line_ending: str = "\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=line_ending).writerows([header, *rows])
    return buffer.getvalue()


def inserts(count: int) -> str:
    return to_csv(["LastName", "Email"], [[f"Bulk{n}", f"bulk{n}@example.com"]
                                           for n in range(count)])


def seed(emu: Emulator, count: int, **fields: object) -> list[str]:
    return emu.seed("Contact", [{"LastName": f"Old{n}", "FirstName": "Before", **fields}
                                for n in range(count)])


def code(error: str) -> str:
    return error.split(":", 1)[0]


# --- lifecycle ----------------------------------------------------------------------------


def test_update_lifecycle_with_failed_rows(emu, session):
    ids = seed(emu, 3)
    missing = make_id("003", 999_999)
    data = to_csv(["Id", "FirstName", "Email"], [
        [ids[0], "Ann", "ann@example.com"],
        [ids[1], "Bob", "not-an-address"],
        [ids[2], "C" * 41, "c@example.com"],
        [missing, "Dan", "dan@example.com"],
    ])
    created = session.post(url(emu), json={"object": "Contact", "operation": "update",
                                           "contentType": "CSV", "lineEnding": "LF"}, timeout=10)
    assert created.status_code == 200
    assert created.headers["Sforce-Limit-Info"].startswith("api-usage=")
    job = created.json()
    assert job["state"] == "Open" and job["id"].startswith("750") and len(job["id"]) == 18
    assert job["apiVersion"] == 60.0 and job["contentUrl"].endswith(f"/{job['id']}/batches")
    assert "jobType" not in job and "numberRecordsProcessed" not in job
    uploaded = upload(session, emu, job["id"], data)
    assert uploaded.status_code == 201 and uploaded.content == b""
    closed = set_state(session, emu, job["id"], "UploadComplete")
    assert closed.json()["state"] == "UploadComplete" and "lineEnding" not in closed.json()
    info = wait_done(session, emu, job["id"])
    assert info["state"] == "JobComplete" and info["jobType"] == "V2Ingest"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (4, 3)
    successes = result_rows(session, emu, job["id"], "successfulResults")
    assert successes == [{"sf__Id": ids[0], "sf__Created": "false", "Id": ids[0],
                          "FirstName": "Ann", "Email": "ann@example.com"}]
    failures = {row["Id"]: row for row in result_rows(session, emu, job["id"], "failedResults")}
    assert code(failures[ids[1]]["sf__Error"]) == "INVALID_EMAIL_ADDRESS"
    assert failures[ids[1]]["sf__Error"].endswith(":Email --")
    assert code(failures[ids[2]]["sf__Error"]) == "STRING_TOO_LONG"
    assert failures[missing]["sf__Error"] == "ENTITY_IS_DELETED:entity is deleted:--"
    assert failures[ids[1]]["FirstName"] == "Bob" and failures[missing]["sf__Id"] == ""
    assert emu.get("Contact", ids[0])["FirstName"] == "Ann"
    assert emu.get("Contact", ids[1])["FirstName"] == "Before"


def test_upsert_lifecycle_matches_by_external_id(emu, session):
    [old] = emu.seed("Contact", [{"LastName": "Old", "External_Id__c": "ext-1"}])
    data = to_csv(["External_Id__c", "LastName"], [
        ["EXT-1", "Updated"], ["ext-2", "New"], ["ext-3", "Twice"], ["ext-3", "Again"],
        ["ext-4", ""]])
    info, successes, failures, unprocessed = run(
        session, emu, data, operation="upsert", externalIdFieldName="external_id__c")
    assert info["externalIdFieldName"] == "External_Id__c"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (5, 3)
    by_key = {row["External_Id__c"]: row for row in successes}
    assert by_key["EXT-1"]["sf__Id"] == old and by_key["EXT-1"]["sf__Created"] == "false"
    assert by_key["ext-2"]["sf__Created"] == "true"
    assert emu.get("Contact", by_key["ext-2"]["sf__Id"])["LastName"] == "New"
    assert emu.get("Contact", old)["LastName"] == "Updated"
    assert sorted(code(row["sf__Error"]) for row in failures) == [
        "DUPLICATE_VALUE", "DUPLICATE_VALUE", "REQUIRED_FIELD_MISSING"]
    assert unprocessed == []


@pytest.mark.parametrize(("field", "value"), [
    ("Email", "nope"), ("LastName", "x" * 81), ("External_Id__c", "taken"),
    ("Loyalty_Score__c", "lots"), ("HasOptedOutOfEmail", "yes"), ("Birthdate", "2024-02-30"),
    ("LastName", "#N/A"), ("Formula_Tier__c", "Gold"),
])
def test_a_row_fails_as_the_same_record_does_in_collections(emu, session, field, value):
    first, second = seed(emu, 2)
    emu.seed("Contact", [{"LastName": "Holder", "External_Id__c": "taken"}])
    record = {"attributes": {"type": "Contact"}, "id": first,
              field: None if value == "#N/A" else value}
    response = session.patch(f"{emu.url}/services/data/{V}/composite/sobjects",
                             json={"records": [record]}, timeout=10)
    [expected] = response.json()[0]["errors"]
    _, _, [failure], _ = run(session, emu, to_csv(["Id", field], [[second, value]]))
    fields = ",".join(expected["fields"])
    assert failure["sf__Error"] == (f"{expected['statusCode']}:{expected['message']}:"
                                    f"{fields + ' ' if fields else ''}--")


def test_lock_fault_fails_rows_with_unable_to_lock_row():
    with Emulator(random_seed=7, lock_rate=1.0) as emu:
        response = requests.post(emu.url + "/services/oauth2/token", data=LOGIN, timeout=10)
        http = requests.Session()
        http.headers["Authorization"] = "Bearer " + response.json()["access_token"]
        ids = seed(emu, 3)
        info, successes, failures, _ = run(http, emu, to_csv(
            ["Id", "Title"], [[record_id, "T"] for record_id in ids]))
        assert info["numberRecordsFailed"] == 3 and successes == []
        assert {code(row["sf__Error"]) for row in failures} == {"UNABLE_TO_LOCK_ROW"}


def test_record_faults_reach_bulk_rows_too(emu, session):
    ids = seed(emu, 3)
    emu.set_faults(lock_forever_ids=[ids[0]], storage_full_after=1)
    _, successes, failures, _ = run(session, emu, to_csv(
        ["Id", "Title"], [[record_id, "T"] for record_id in ids]))
    assert [row["sf__Id"] for row in successes] == [ids[1]]
    assert {row["Id"]: code(row["sf__Error"]) for row in failures} == {
        ids[0]: "UNABLE_TO_LOCK_ROW", ids[2]: "STORAGE_LIMIT_EXCEEDED"}


def test_delete_and_insert_operations(emu, session):
    ids = seed(emu, 2)
    info, successes, failures, _ = run(session, emu, to_csv(
        ["Id"], [[ids[0]], [make_id("003", 999_998)], ["not-an-id"]]), operation="delete")
    assert [row["sf__Id"] for row in successes] == [ids[0]]
    assert emu.get("Contact", ids[0]) is None
    assert sorted(code(row["sf__Error"]) for row in failures) == ["ENTITY_IS_DELETED",
                                                                  "MALFORMED_ID"]
    info, successes, failures, _ = run(session, emu, inserts(3), operation="insert",
                                       object="contact")
    assert info["object"] == "Contact" and failures == []
    assert {row["sf__Created"] for row in successes} == {"true"}
    assert {emu.get("Contact", row["sf__Id"])["LastName"] for row in successes} == {
        "Bulk0", "Bulk1", "Bulk2"}


# --- values ---------------------------------------------------------------------------------


def test_empty_cell_keeps_a_value_and_na_sets_null(emu, session):
    [record_id] = seed(emu, 1, Title="Boss", Department="Sales")
    data = to_csv(["Id", "FirstName", "Title", "Department"], [[record_id, "", "#N/A", "Ops"]])
    info, _, failures, _ = run(session, emu, data)
    assert failures == [] and info["numberRecordsProcessed"] == 1
    stored = emu.get("Contact", record_id)
    assert (stored["FirstName"], stored["Title"], stored["Department"]) == ("Before", None, "Ops")


def test_typed_values_are_stored_normalised(emu, session):
    [record_id] = seed(emu, 1)
    data = to_csv(["Id", "Loyalty_Score__c", "HasOptedOutOfEmail", "Birthdate"],
                  [[record_id, "85", "TRUE", "1990-04-01"]])
    _, [success], _, _ = run(session, emu, data)
    assert success["Loyalty_Score__c"] == "85"  # results echo the row as uploaded
    stored = emu.get("Contact", record_id)
    assert stored["Loyalty_Score__c"] == 85.0 and stored["HasOptedOutOfEmail"] is True
    assert stored["Formula_Tier__c"] == "Gold" and stored["Birthdate"] == "1990-04-01"


@pytest.mark.parametrize(("sent", "stored"), [
    ("2026-11-03T09:10:00+01:00", "2026-11-03T08:10:00.000Z"),
    ("2026-11-03T08:10:00.000+0000", "2026-11-03T08:10:00.000Z"),
    ("2026-11-03T08:10Z", "2026-11-03T08:10:00.000Z"),
    ("2026-11-03T08:10:00.123456789Z", "2026-11-03T08:10:00.123Z"),
    ("2026-12-31T23:30:00-01:00", "2027-01-01T00:30:00.000Z"),
    ("2026-11-03", "2026-11-03"),
    ("soon", "soon"),
])
def test_date_times_are_normalised_to_utc_milliseconds(sent, stored):
    assert normalise_datetime(sent) == stored


def test_quoted_fields_keep_delimiters_quotes_and_line_breaks(emu, session):
    ids = seed(emu, 2)
    tricky = ['Acme, "Ltd"\r\nline two\nline three\rend', "plain"]
    for line_ending in ("LF", "CRLF"):
        terminator = "\r\n" if line_ending == "CRLF" else "\n"
        data = to_csv(["Id", "Description"], [[ids[0], tricky[0]], [ids[1], tricky[1]]],
                      terminator)
        info, successes, _, _ = run(session, emu, data, lineEnding=line_ending)
        assert info["state"] == "JobComplete" and len(successes) == 2
        assert emu.get("Contact", ids[0])["Description"] == tricky[0]
        assert {row["Description"] for row in successes} == set(tricky)


def test_results_come_shuffled_and_repeat_with_the_seed(session, emu):
    def order(emulator, http=None, **faults):
        emulator.set_faults(**faults)
        ids = seed(emulator, 300)
        data = to_csv(["Id", "Title"], [[record_id, "T"] for record_id in ids])
        if http is None:
            token = requests.post(emulator.url + "/services/oauth2/token", data=LOGIN,
                                  timeout=10).json()["access_token"]
            http = requests.Session()
            http.headers["Authorization"] = "Bearer " + token
        _, successes, _, _ = run(http, emulator, data)
        return ids, [row["sf__Id"] for row in successes]

    ids, shuffled = order(emu, session)
    assert shuffled != ids and sorted(shuffled) == sorted(ids)
    with Emulator(random_seed=7) as twin:
        assert order(twin) == (ids, shuffled)
    with Emulator(random_seed=7, bulk_shuffle_results=False) as plain:
        plain_ids, in_order = order(plain)
        assert in_order == plain_ids


# --- failures, aborts, strict CSV ------------------------------------------------------------


def test_failed_job_keeps_its_committed_batches():
    with Emulator(random_seed=7, bulk_fail_after_batches=1) as emu:
        token = requests.post(emu.url + "/services/oauth2/token", data=LOGIN, timeout=10)
        http = requests.Session()
        http.headers["Authorization"] = "Bearer " + token.json()["access_token"]
        info, successes, failures, unprocessed = run(http, emu, inserts(25_000),
                                                     operation="insert")
        assert info["state"] == "Failed" and info["errorMessage"]
        assert info["numberRecordsProcessed"] == len(successes) == 10_000
        assert failures == [] and len(unprocessed) == 15_000
        assert len(emu.records("Contact")) == 10_000
        landed = {row["LastName"] for row in successes}
        assert landed.isdisjoint(row["LastName"] for row in unprocessed)
        assert list(unprocessed[0]) == ["LastName", "Email"]


def test_abort_lists_the_rows_not_yet_processed():
    with Emulator(random_seed=7, bulk_rows_per_second=10_000) as emu:
        token = requests.post(emu.url + "/services/oauth2/token", data=LOGIN, timeout=10)
        http = requests.Session()
        http.headers["Authorization"] = "Bearer " + token.json()["access_token"]
        job_id = create(http, emu, operation="insert")["id"]
        assert upload(http, emu, job_id, inserts(40_000)).status_code == 201
        set_state(http, emu, job_id, "UploadComplete")
        while http.get(url(emu, f"/{job_id}"), timeout=10).json()[
                "numberRecordsProcessed"] < 10_000:
            time.sleep(0.02)
        aborted = set_state(http, emu, job_id, "Aborted")
        assert aborted.json()["state"] == "Aborted"
        successes = result_rows(http, emu, job_id, "successfulResults")
        unprocessed = result_rows(http, emu, job_id, "unprocessedRecords")
        assert len(successes) + len(unprocessed) == 40_000 and unprocessed
        assert len(emu.records("Contact")) == len(successes)
        assert wait_done(http, emu, job_id)["state"] == "Aborted"


def test_aborting_an_open_job_leaves_every_row_unprocessed(emu, session):
    job_id = create(session, emu, operation="insert")["id"]
    upload(session, emu, job_id, inserts(5))
    assert set_state(session, emu, job_id, "Aborted").json()["state"] == "Aborted"
    assert len(result_rows(session, emu, job_id, "unprocessedrecords")) == 5
    assert result_rows(session, emu, job_id, "successfulResults") == []
    assert emu.records("Contact") == []
    assert set_state(session, emu, job_id, "UploadComplete").status_code == 400


def test_open_job_is_never_processed(emu, session):
    job_id = create(session, emu, operation="insert")["id"]
    assert upload(session, emu, job_id, inserts(5)).status_code == 201
    time.sleep(0.5)
    info = session.get(url(emu, f"/{job_id}"), timeout=10).json()
    assert (info["state"], info["numberRecordsProcessed"]) == ("Open", 0)
    assert emu.records("Contact") == []
    assert session.get(url(emu, f"/{job_id}/successfulResults"), timeout=10).status_code == 400


@pytest.mark.parametrize(("data", "line_ending", "message"), [
    ("\ufeffLastName\nSmith\n", "LF", "Field name not found : \ufeffLastName"),
    ("LastName,Nope__c\nSmith,x\n", "LF", "InvalidBatch : Field name not found : Nope__c"),
    ("LastName,lastname\nSmith,x\n", "LF", "Duplicate field name : lastname"),
    ("LastName\r\nSmith\rJones\r\n", "CRLF", "LineEnding is invalid on user data. Current "
                                               "LineEnding setting is CRLF"),
    ("LastName\nSmith\n", "CRLF", "Current LineEnding setting is CRLF"),
    ("LastName\r\nSmith\r\n", "LF", "Current LineEnding setting is LF"),
    ('LastName\n"Smith"x\n', "LF", "ClientInputError"),
    ("", "LF", "ClientInputError"),
])
def test_malformed_uploads_fail_the_job(emu, session, data, line_ending, message):
    info, successes, _, _ = run(session, emu, data, operation="insert", lineEnding=line_ending)
    assert info["state"] == "Failed" and message in info["errorMessage"]
    assert successes == [] and emu.records("Contact") == []


def test_upload_over_100_mb_is_refused(emu, session):
    job_id = create(session, emu, operation="insert")["id"]
    row = b"Smith,smith@example.com\n"
    body = b"LastName,Email\n" + row * (100 * 1024 * 1024 // len(row) + 1)
    refused = upload(session, emu, job_id, body)
    assert refused.status_code == 413
    assert refused.json()[0]["message"].startswith("Failed to read request. Exceeded max size")
    assert upload(session, emu, job_id, inserts(2)).status_code == 201
    set_state(session, emu, job_id, "UploadComplete")
    assert wait_done(session, emu, job_id)["numberRecordsProcessed"] == 2


def test_request_level_refusals(emu, session):
    def post(**body):
        return session.post(url(emu), json=body, timeout=10)

    assert post(object="Contact", operation="upsert").json()[0]["errorCode"] == "INVALIDJOB"
    assert post(object="Contact", operation="upsert",
                externalIdFieldName="Email").status_code == 400
    assert post(object="Account", operation="insert").json()[0]["errorCode"] == "INVALIDENTITY"
    assert post(object="Contact", operation="merge").status_code == 400
    assert post(object="Contact", operation="insert", lineEnding="CR").status_code == 400
    job_id = create(session, emu, operation="insert")["id"]
    wrong_type = session.put(url(emu, f"/{job_id}/batches"), data=b"LastName\nA\n",
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert wrong_type.status_code == 415
    upload(session, emu, job_id, inserts(1))
    upload(session, emu, job_id, inserts(1))
    twice = set_state(session, emu, job_id, "UploadComplete")
    assert twice.status_code == 400 and "only do 'PUT' once" in twice.json()[0]["message"]
    assert session.get(url(emu, "/" + make_id("750", 999)), timeout=10).status_code == 404
    assert requests.get(url(emu), timeout=10).status_code == 401
    old = f"{emu.url}/services/data/v40.0/jobs/ingest"
    assert session.get(old, timeout=10).status_code == 404


def test_list_and_delete_jobs(emu, session):
    done, _, _, _ = run(session, emu, inserts(1), operation="insert")
    still_open = create(session, emu, operation="insert")["id"]
    listed = session.get(url(emu), timeout=10).json()
    assert listed["done"] is True
    assert {job["id"] for job in listed["records"]} == {done["id"], still_open}
    assert session.delete(url(emu, f"/{still_open}"), timeout=10).status_code == 400
    assert session.delete(url(emu, f"/{done['id']}"), timeout=10).status_code == 204
    assert session.get(url(emu, f"/{done['id']}"), timeout=10).status_code == 404
    assert [job["id"] for job in session.get(url(emu), timeout=10).json()["records"]] == [
        still_open]


# --- limits and stats --------------------------------------------------------------------------


def limits(session, emu) -> dict:
    return session.get(f"{emu.url}/services/data/{V}/limits/", timeout=10).json()


def test_each_internal_batch_counts_against_the_daily_allocation(emu, session):
    before = limits(session, emu)
    assert before["DailyBulkApiBatches"] == {"Max": 15000, "Remaining": 15000}
    assert before["DailyBulkV2QueryJobs"]["Max"] > 0
    run(session, emu, inserts(25_000), operation="insert")
    assert limits(session, emu)["DailyBulkApiBatches"]["Remaining"] == 14997


def test_a_spent_batch_allowance_fails_the_job_and_refuses_new_ones(emu, session):
    emu.set_faults(bulk_batches_remaining=1)
    info, successes, _, unprocessed = run(session, emu, inserts(25_000), operation="insert")
    assert info["state"] == "Failed" and info["errorMessage"].startswith("ExceededQuota")
    assert (len(successes), len(unprocessed)) == (10_000, 15_000)
    assert limits(session, emu)["DailyBulkApiBatches"]["Remaining"] == 0
    refused = session.post(url(emu), json={"object": "Contact", "operation": "insert"},
                           timeout=10)
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "LIMIT_EXCEEDED"
    emu.reset_usage()
    assert limits(session, emu)["DailyBulkApiBatches"]["Remaining"] == 15000


def test_stats_count_bulk_calls_by_kind(emu, session):
    calls_before = emu.stats()["api_calls"]
    run(session, emu, inserts(2), operation="insert")
    bulk = emu.stats()["bulk"]
    assert (bulk["jobs_created"], bulk["uploads"], bulk["closes"], bulk["result_reads"]) == (
        1, 1, 1, 3)
    assert bulk["polls"] >= 1 and bulk["batches"] == 1 and bulk["rows_processed"] == 2
    assert emu.stats()["api_calls"] - calls_before == bulk["calls"]
    assert emu.stats()["collections_records"] == 0


def test_cli_documents_the_bulk_options():
    text = build_parser().format_help()
    for option in ("--bulk-rows-per-second", "--bulk-fail-after-batches",
                   "--bulk-batches-remaining", "--no-bulk-shuffle-results"):
        assert option in text
