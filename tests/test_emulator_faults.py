"""Emulator reliability features over raw HTTP: UTF-16 lengths, extra faults, TLS, identity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tls_helpers import make_tls_files

from target_salesforce_crm.emulator import FIXTURE_CREDENTIALS, Emulator, make_id

REPO = Path(__file__).resolve().parent.parent
V = "v60.0"
EMOJI = "\N{GRINNING FACE}"  # outside the BMP: one code point, two UTF-16 units


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(random_seed=7) as emulator:
        yield emulator


def token_response(emu: Emulator) -> requests.Response:
    data = {"grant_type": "password", "client_id": FIXTURE_CREDENTIALS["client_id"],
            "client_secret": FIXTURE_CREDENTIALS["client_secret"],
            "username": FIXTURE_CREDENTIALS["username"],
            "password": FIXTURE_CREDENTIALS["password"] + FIXTURE_CREDENTIALS["security_token"]}
    return requests.post(emu.url + "/services/oauth2/token", data=data, timeout=10)


def login(emu: Emulator) -> requests.Session:
    response = token_response(emu)
    assert response.status_code == 200, response.text
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + response.json()["access_token"]
    return session


def api(emu: Emulator, path: str) -> str:
    return f"{emu.url}/services/data/{V}/{path}"


def send(session: requests.Session, emu: Emulator, method: str, records: list,
         path: str = "composite/sobjects", all_or_none: bool = False) -> requests.Response:
    body = json.dumps({"allOrNone": all_or_none, "records": records}, ensure_ascii=False)
    return session.request(method, api(emu, path), data=body.encode(),
                           headers={"Content-Type": "application/json"}, timeout=10)


def contact(record_id: str | None = None, **fields: object) -> dict:
    record: dict = {"attributes": {"type": "Contact"}, **fields}
    if record_id is not None:
        record["Id"] = record_id
    return record


def codes(result: dict) -> list[str]:
    return [error["statusCode"] for error in result["errors"]]


# --- lengths in UTF-16 code units -------------------------------------------------------------


def test_emoji_length_counts_utf16_units_on_insert(emu):
    session = login(emu)
    at_limit = EMOJI * 20  # FirstName holds 40 units: 20 emoji fill it exactly
    over = EMOJI * 20 + "a"  # 21 code points, 41 units
    for batch in ([at_limit], [over], [at_limit, over, "short"]):
        records = [contact(LastName="L", FirstName=value) for value in batch]
        results = send(session, emu, "POST", records).json()
        for value, result in zip(batch, results, strict=True):
            if value == over:
                assert codes(result) == ["STRING_TOO_LONG"]
                assert result["errors"][0]["fields"] == ["FirstName"]
                assert "(max length=40)" in result["errors"][0]["message"]
            else:
                assert result["success"], result
                assert emu.get("Contact", result["id"])["FirstName"] == value


def test_emoji_length_on_update_and_upsert(emu):
    ids = emu.seed("Contact", [{"LastName": "A", "External_Id__c": "X1"},
                               {"LastName": "B", "External_Id__c": "X2"}])
    session = login(emu)
    over = "é" + EMOJI * 40  # LastName holds 80 units: 41 code points, 81 units
    at_limit = "é" * 2 + EMOJI * 39
    results = send(session, emu, "PATCH", [contact(ids[0], LastName=over),
                                           contact(ids[1], LastName=at_limit)]).json()
    assert codes(results[0]) == ["STRING_TOO_LONG"] and results[1]["success"]
    assert emu.get("Contact", ids[0])["LastName"] == "A"
    assert emu.get("Contact", ids[1])["LastName"] == at_limit
    results = send(session, emu, "PATCH", [contact(External_Id__c="X1", LastName=over)],
                   path="composite/sobjects/Contact/External_Id__c").json()
    assert codes(results[0]) == ["STRING_TOO_LONG"]


def test_bmp_text_still_counts_one_unit_per_character(emu):
    session = login(emu)
    text = "日本" * 20  # 40 BMP characters: exactly FirstName's length
    results = send(session, emu, "POST", [contact(LastName="L", FirstName=text)]).json()
    assert results[0]["success"]
    assert emu.get("Contact", results[0]["id"])["FirstName"] == text


# --- deterministic faults ---------------------------------------------------------------------


def admin_faults(emu: Emulator, **settings: object) -> requests.Response:
    return requests.post(emu.url + "/__emulator__/faults", json=settings, timeout=10)


def test_poisoned_value_refuses_the_whole_request_until_split(emu):
    ids = emu.seed("Contact", [{"LastName": "A", "External_Id__c": "E1"},
                               {"LastName": "B", "External_Id__c": "E2"}])
    assert admin_faults(emu, poison_values=["POISON"]).json()["poison_values"] == ["POISON"]
    session = login(emu)
    bad = contact(LastName="has POISON inside")
    response = send(session, emu, "POST", [contact(LastName="fine"), bad])
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert len(emu.records("Contact")) == 2  # nothing written
    response = send(session, emu, "PATCH", [contact(ids[0], Title="ok"),
                                            contact(ids[1], Title="POISON")])
    assert response.status_code == 400 and "Title" not in emu.get("Contact", ids[0])
    upsert = "composite/sobjects/Contact/External_Id__c"
    response = send(session, emu, "PATCH", [contact(External_Id__c="E1", Title="POISON")],
                    path=upsert)
    assert response.status_code == 400
    # split into halves: the clean half goes through, the poisoned one alone still fails
    assert send(session, emu, "POST", [contact(LastName="fine")]).json()[0]["success"]
    assert send(session, emu, "POST", [bad]).status_code == 400
    assert emu.stats()["faults_injected"]["poison"] == 4
    assert admin_faults(emu, poison_values=[]).status_code == 200
    assert send(session, emu, "POST", [bad]).json()[0]["success"]


def test_lock_forever_ids_always_fail_to_lock(emu):
    ids = emu.seed("Contact", [{"LastName": str(n), "External_Id__c": f"K{n}"}
                               for n in range(3)])
    admin_faults(emu, lock_forever_ids=[ids[1][:15]])  # the 15-character form works too
    session = login(emu)
    for _ in range(3):
        results = send(session, emu, "PATCH", [contact(i, Title="T") for i in ids]).json()
        assert [r["success"] for r in results] == [True, False, True]
        assert codes(results[1]) == ["UNABLE_TO_LOCK_ROW"]
        assert ids[1] in results[1]["errors"][0]["message"]
    results = send(session, emu, "PATCH", [contact(External_Id__c="K1", Title="U")],
                   path="composite/sobjects/Contact/External_Id__c").json()
    assert codes(results[0]) == ["UNABLE_TO_LOCK_ROW"]
    deleted = session.delete(api(emu, "composite/sobjects"), params={"ids": ids[1]},
                             timeout=10).json()
    assert codes(deleted[0]) == ["UNABLE_TO_LOCK_ROW"]
    assert "Title" not in emu.get("Contact", ids[1])
    assert emu.stats()["faults_injected"]["lock"] == 5
    admin_faults(emu, lock_forever_ids=[])
    assert send(session, emu, "PATCH", [contact(ids[1], Title="T")]).json()[0]["success"]


def test_lock_forever_ids_are_checked():
    with pytest.raises(ValueError, match="lock_forever_ids"):
        Emulator(lock_forever_ids=["not-an-id"])


def test_storage_full_after_some_writes(emu):
    ids = emu.seed("Contact", [{"LastName": "A"}])
    admin_faults(emu, storage_full_after=2)
    session = login(emu)
    results = send(session, emu, "POST", [contact(LastName=str(n)) for n in range(3)]).json()
    assert [r["success"] for r in results] == [True, True, False]
    assert results[2]["errors"] == [{"statusCode": "STORAGE_LIMIT_EXCEEDED",
                                     "message": "storage limit exceeded", "fields": []}]
    results = send(session, emu, "PATCH", [contact(ids[0], Title="T")]).json()
    assert codes(results[0]) == ["STORAGE_LIMIT_EXCEEDED"]
    assert "Title" not in emu.get("Contact", ids[0]) and len(emu.records("Contact")) == 3
    assert emu.stats()["faults_injected"]["storage_full"] == 2
    admin_faults(emu, storage_full_after=None)
    assert send(session, emu, "PATCH", [contact(ids[0], Title="T")]).json()[0]["success"]


def test_storage_rolled_back_writes_are_not_spent():
    with Emulator(storage_full_after=1) as emu:
        session = login(emu)
        results = send(session, emu, "POST", [contact(LastName="a"), contact(LastName="b")],
                       all_or_none=True).json()
        assert codes(results[1]) == ["STORAGE_LIMIT_EXCEEDED"] and not emu.records("Contact")
        assert send(session, emu, "POST", [contact(LastName="a")]).json()[0]["success"]
        assert emu.stats()["storage_writes_left"] == 0


def test_storage_full_now_fails_every_write():
    with Emulator(storage_full_after=0) as emu:
        session = login(emu)
        results = send(session, emu, "PATCH", [contact(External_Id__c="N1", LastName="n")],
                       path="composite/sobjects/Contact/External_Id__c").json()
        assert codes(results[0]) == ["STORAGE_LIMIT_EXCEEDED"] and not emu.records("Contact")


def test_hostile_instance_url_and_missing_access_token(emu):
    assert admin_faults(emu, instance_url="http://evil.example").status_code == 200
    body = token_response(emu).json()
    assert body["instance_url"] == "http://evil.example" and body["access_token"]
    admin_faults(emu, instance_url=None, omit_access_token=True)
    response = token_response(emu)
    assert response.status_code == 200
    assert "access_token" not in response.json()
    assert response.json()["instance_url"] == emu.url
    with Emulator(instance_url="not a url at all") as other:
        assert token_response(other).json()["instance_url"] == "not a url at all"


def test_latency_changes_at_run_time(emu):
    session = login(emu)

    def timed() -> float:
        start = time.monotonic()
        assert session.get(api(emu, "limits"), timeout=10).status_code == 200
        return time.monotonic() - start

    assert admin_faults(emu, latency_ms=300).json()["latency_ms"] == 300
    assert timed() >= 0.3
    admin_faults(emu, latency_ms=0)
    assert timed() < 0.3


def test_bad_fault_values_change_nothing(emu):
    for bad in ({"poison_values": "x"}, {"poison_values": [""]}, {"storage_full_after": -1},
                {"omit_access_token": "yes"}, {"instance_url": 5},
                {"lock_forever_ids": ["003"]}, {"latency_ms": 5, "storage_full_after": "x"}):
        assert admin_faults(emu, **bad).status_code == 400, bad
    faults = requests.get(emu.url + "/__emulator__/faults", timeout=10).json()
    assert faults["latency_ms"] == 0 and faults["storage_full_after"] is None


# --- HTTPS ------------------------------------------------------------------------------------


def test_https_with_the_right_ca_and_not_with_another(tmp_path):
    good = make_tls_files(tmp_path, "good")
    other = make_tls_files(tmp_path, "other")
    with Emulator(tls_cert=good.server_cert, tls_key=good.server_key) as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        data = {"grant_type": "password", "client_id": FIXTURE_CREDENTIALS["client_id"],
                "client_secret": FIXTURE_CREDENTIALS["client_secret"],
                "username": FIXTURE_CREDENTIALS["username"],
                "password": FIXTURE_CREDENTIALS["password"]
                + FIXTURE_CREDENTIALS["security_token"]}
        token_url = emu.url + "/services/oauth2/token"
        response = requests.post(token_url, data=data, verify=str(good.ca_cert), timeout=10)
        assert response.status_code == 200 and response.json()["instance_url"] == emu.url
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(token_url, data=data, verify=str(other.ca_cert), timeout=10)
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(emu.url.replace("https:", "http:") + "/services/data/", timeout=10)
        # the server keeps serving after refused handshakes, on a keep-alive session too
        with requests.Session() as session:
            session.headers["Authorization"] = "Bearer " + response.json()["access_token"]
            for _ in range(3):
                limits = session.get(api(emu, "limits"), verify=str(good.ca_cert), timeout=10)
                assert limits.status_code == 200
        localhost = emu.url.replace("127.0.0.1", "localhost") + "/services/data/"
        assert requests.get(localhost, verify=str(good.ca_cert), timeout=10).status_code == 200


def test_tls_key_in_the_certificate_file(tmp_path):
    files = make_tls_files(tmp_path)
    combined = tmp_path / "combined.pem"
    combined.write_bytes(files.server_cert.read_bytes() + files.server_key.read_bytes())
    with Emulator(tls_cert=combined) as emu:
        response = requests.get(emu.url + "/services/data/", verify=str(files.ca_cert),
                                timeout=10)
        assert response.status_code == 200
    with pytest.raises(ValueError, match="tls_cert"):
        Emulator(tls_key=files.server_key)


# --- describe ---------------------------------------------------------------------------------


def test_describe_of_an_unknown_object_is_not_found(emu):
    session = login(emu)
    for name in ("Widget", "Nope__c", "Contact__c"):
        response = session.get(api(emu, f"sobjects/{name}/describe/"), timeout=10)
        assert response.status_code == 404
        assert response.json() == [{"message": "The requested resource does not exist",
                                    "errorCode": "NOT_FOUND"}]
    assert session.get(api(emu, "sobjects/contact/describe"), timeout=10).json()["name"] \
        == "Contact"
    assert emu.stats()["describe_calls"] == {"Contact": 1}


# --- identity URL -----------------------------------------------------------------------------


def test_identity_url_names_a_stable_org(emu):
    body = token_response(emu).json()
    prefix, org_id, user_id = body["id"].rsplit("/", 2)
    assert prefix == "https://login.salesforce.com/id"
    assert org_id == emu.org_id and org_id.startswith("00D") and len(org_id) == 18
    assert user_id.startswith("005") and len(user_id) == 18
    assert body["access_token"].startswith(org_id[:15] + "!")
    with Emulator() as again:
        assert token_response(again).json()["id"] == body["id"]


def test_identity_url_with_a_chosen_org_id():
    with Emulator(org_id="00D5e000000AbCd") as emu:  # a 15-character Id comes back as 18
        body = token_response(emu).json()
        org_id = body["id"].rsplit("/", 2)[1]
        assert org_id[:15] == "00D5e000000AbCd" and len(org_id) == 18
        assert body["access_token"].startswith("00D5e000000AbCd!")
    for bad in ("003000000000001", "00Dshort", "00D5e000000AbCdZZZ"):
        with pytest.raises(ValueError, match="organization Id"):
            Emulator(org_id=bad)


# --- command line -----------------------------------------------------------------------------


def test_command_line_flags(tmp_path):
    files = make_tls_files(tmp_path)
    locked = make_id("003", 1)  # the first Contact the emulator will create
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        [sys.executable, "-m", "target_salesforce_crm.emulator", "--port", "0",
         "--tls-cert", str(files.server_cert), "--tls-key", str(files.server_key),
         "--org-id", "00D5e000000AbCd", "--poison-value", "POISON", "--poison-value", "VENOM",
         "--lock-forever-id", locked, "--storage-full-after", "5",
         "--instance-url", "http://evil.example", "--omit-access-token", "--latency-ms", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    ) as process:
        verify = str(files.ca_cert)
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line.startswith("emulator listening on https://127.0.0.1:"), line
            url = line.rsplit(" ", 1)[1]
            faults = requests.get(url + "/__emulator__/faults", verify=verify, timeout=10).json()
            assert faults["poison_values"] == ["POISON", "VENOM"]
            assert faults["lock_forever_ids"] == [locked] and faults["storage_full_after"] == 5
            assert faults["omit_access_token"] is True and faults["latency_ms"] == 1
            data = {"grant_type": "password", "client_id": FIXTURE_CREDENTIALS["client_id"],
                    "client_secret": FIXTURE_CREDENTIALS["client_secret"],
                    "username": FIXTURE_CREDENTIALS["username"],
                    "password": FIXTURE_CREDENTIALS["password"]
                    + FIXTURE_CREDENTIALS["security_token"]}
            token_url = url + "/services/oauth2/token"
            body = requests.post(token_url, data=data, verify=verify, timeout=10).json()
            assert "access_token" not in body and body["instance_url"] == "http://evil.example"
            assert body["id"].split("/")[-2][:15] == "00D5e000000AbCd"
            requests.post(url + "/__emulator__/faults", json={"omit_access_token": False},
                          verify=verify, timeout=10)
            token = requests.post(token_url, data=data, verify=verify, timeout=10).json()
            headers = {"Authorization": "Bearer " + token["access_token"]}
            collections = f"{url}/services/data/{V}/composite/sobjects"
            poisoned = {"records": [contact(LastName="VENOM")]}
            assert requests.post(collections, json=poisoned, headers=headers, verify=verify,
                                 timeout=10).status_code == 400
            created = requests.post(collections, json={"records": [contact(LastName="A")]},
                                    headers=headers, verify=verify, timeout=10).json()
            assert created[0]["id"] == locked
            locked_update = {"records": [contact(created[0]["id"], Title="T")]}
            result = requests.patch(collections, json=locked_update, headers=headers,
                                    verify=verify, timeout=10).json()
            assert codes(result[0]) == ["UNABLE_TO_LOCK_ROW"]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
