"""Emulator reliability features over raw HTTP: UTF-16 lengths, extra faults, TLS, identity."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from target_salesforce_crm.emulator import FIXTURE_CREDENTIALS, Emulator

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
