"""Unit tests for target_salesforce_crm/ids.py (SPEC §3 "Ids")."""

from __future__ import annotations

import pytest

from target_salesforce_crm.salesforce.ids import checksum, normalize_id

CONTACT_15 = "003A0000006Vm9r"
CONTACT_18 = "003A0000006Vm9rIAC"
LEAD_15 = "00QA0000006Vm9r"
LEAD_18 = "00QA0000006Vm9rMAC"
ACCOUNT_15 = "001A0000006Vm9r"
ACCOUNT_18 = "001A0000006Vm9rIAC"


# --------------------------------------------------------------------------- checksum


def test_known_pair() -> None:
    assert checksum("001A0000006Vm9r") == "IAC"
    assert "001A0000006Vm9r" + checksum("001A0000006Vm9r") == "001A0000006Vm9rIAC"


@pytest.mark.parametrize(
    ("id15", "suffix"),
    [
        ("003000000000000", "AAA"),  # no upper-case letter at all
        ("abcdeabcdeabcde", "AAA"),  # lower-case letters set no bit
        ("ABCDEABCDEABCDE", "555"),  # every bit set → the last alphabet character
        ("A00000000000000", "BAA"),  # offset 0 → bit 1
        ("0A0000000000000", "CAA"),  # offset 1 → bit 2
        ("0000A0000000000", "QAA"),  # offset 4 → bit 16
        ("00000A000000000", "ABA"),  # second chunk
        ("00000000000000Z", "AAQ"),  # last character of the third chunk
        ("0035000000abcDE", "AAY"),  # D (8) + E (16) = 24 → 'Y'
        (LEAD_15, "MAC"),  # Q (4) + A (8) = 12 → 'M'
    ],
)
def test_checksum_encodes_upper_case_positions(id15: str, suffix: str) -> None:
    assert checksum(id15) == suffix


# --------------------------------------------------------------------------- normalize_id: valid


def test_fifteen_character_id_converted_to_eighteen() -> None:
    assert normalize_id(CONTACT_15, "Contact") == (CONTACT_18, None)
    assert normalize_id(LEAD_15, "Lead") == (LEAD_18, None)


def test_eighteen_character_id_accepted_as_is() -> None:
    assert normalize_id(CONTACT_18, "Contact") == (CONTACT_18, None)
    assert normalize_id(LEAD_18, "Lead") == (LEAD_18, None)


@pytest.mark.parametrize(
    "given",
    [CONTACT_18.lower(), CONTACT_18.upper(), "003A0000006Vm9riac"],
)
def test_case_insensitive_eighteen_character_id_restored_to_the_right_case(given: str) -> None:
    assert normalize_id(given, "Contact") == (CONTACT_18, None)


def test_lower_case_lead_id_restores_the_key_prefix() -> None:
    # '00q...' only becomes a Lead id once the checksum restores the upper-case Q
    assert normalize_id(LEAD_18.lower(), "Lead") == (LEAD_18, None)


def test_surrounding_whitespace_ignored() -> None:
    assert normalize_id(f"  {CONTACT_15}\n", "Contact") == (CONTACT_18, None)


# --------------------------------------------------------------------------- normalize_id: refused


@pytest.mark.parametrize("value", [None, ""])
def test_missing_id(value: object) -> None:
    record_id, problem = normalize_id(value, "Contact")
    assert record_id is None
    assert problem is not None
    assert problem.code == "MISSING_ID"
    assert problem.message == "the record has no Salesforce Id"


@pytest.mark.parametrize("value", [3000000000, 3.5, ["003A0000006Vm9r"], {"id": CONTACT_15}])
def test_non_string_id_is_malformed(value: object) -> None:
    record_id, problem = normalize_id(value, "Contact")
    assert record_id is None
    assert problem is not None
    assert problem.code == "MALFORMED_ID"
    assert problem.message == "the Salesforce Id is not a string"


@pytest.mark.parametrize(
    "value",
    [
        "003A0000006Vm9",  # 14
        "003A0000006Vm9rI",  # 16
        "003A0000006Vm9rIA",  # 17
        "003A0000006Vm9rIACX",  # 19
        "003A0000006Vm9r-",  # 16 with punctuation
        "003A000000-Vm9r",  # 15 with punctuation
        "003A0000006Vm9 r",  # inner space
        "003A0000006Vm9ré",  # non-ASCII letter
        "003A0000006Vm9rIA9",  # 9 is not a checksum character (only A-Z, 0-5)
    ],
)
def test_wrong_length_or_characters_is_malformed(value: str) -> None:
    record_id, problem = normalize_id(value, "Contact")
    assert record_id is None
    assert problem is not None
    assert problem.code == "MALFORMED_ID"
    assert "expected 15 or 18 letters and digits" in problem.message
    assert value.strip() not in problem.message


def test_checksum_claiming_an_upper_case_digit_is_a_bad_checksum() -> None:
    # 'D' = bits 0 and 1 of the last chunk: offset 0 of "6Vm9r" is the digit 6
    record_id, problem = normalize_id("003A0000006Vm9rIAD", "Contact")
    assert record_id is None
    assert problem is not None
    assert problem.code == "MALFORMED_ID"
    assert problem.message == "the 18-character Id has a wrong checksum"


def test_account_id_refused_for_a_contact() -> None:
    for value in (ACCOUNT_15, ACCOUNT_18):
        record_id, problem = normalize_id(value, "Contact")
        assert record_id is None
        assert problem is not None
        assert problem.code == "WRONG_OBJECT_ID"
        assert "key prefix 001" in problem.message
        assert "expected key prefix 003" in problem.message


def test_lead_id_refused_for_a_contact_and_named_as_such() -> None:
    record_id, problem = normalize_id(LEAD_18, "Contact")
    assert record_id is None
    assert problem is not None
    assert problem.code == "WRONG_OBJECT_ID"
    assert problem.message == "a Lead Id cannot update a Contact (expected key prefix 003)"


def test_contact_id_refused_for_a_lead() -> None:
    record_id, problem = normalize_id(CONTACT_15, "Lead")
    assert record_id is None
    assert problem is not None
    assert problem.code == "WRONG_OBJECT_ID"
    assert problem.message == "a Contact Id cannot update a Lead (expected key prefix 00Q)"


def test_fifteen_character_ids_are_case_sensitive_for_the_prefix() -> None:
    # a 15-character id carries no checksum, so '00q' is another key prefix, not a Lead
    record_id, problem = normalize_id(LEAD_15.lower(), "Lead")
    assert record_id is None
    assert problem is not None
    assert problem.code == "WRONG_OBJECT_ID"


# --------------------------------------------------------------------------- any case of 18 chars


@pytest.mark.parametrize(
    "given",
    ["003dN0000000005IAA", "003dn0000000005iaa", "003DN0000000005IAA", "003Dn0000000005iAa"],
)
def test_eighteen_character_id_in_any_case_restored_from_its_suffix(given: str) -> None:
    # IAA: only the 4th character (D) is upper case, whatever case the Id was written in
    assert normalize_id(given, "Contact") == ("003Dn0000000005IAA", None)


def test_swapped_case_of_a_mixed_case_id_is_the_same_record() -> None:
    assert normalize_id(CONTACT_18.swapcase(), "Contact") == (CONTACT_18, None)


def test_fifteen_character_id_keeps_the_case_it_was_given() -> None:
    upper, lower = normalize_id("003DN0000000005", "Contact"), normalize_id("003dn0000000005",
                                                                             "Contact")
    assert upper == ("003DN0000000005YAA", None)
    assert lower == ("003dn0000000005AAA", None)
