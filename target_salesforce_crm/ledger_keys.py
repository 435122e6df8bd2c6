"""The ledger's keys and hashes: which entry a record is, and what of it last landed; and
where the ledger lives by default (here, not in ledger.py, so that settings.py can name it
without importing SQLAlchemy).

Keys are built the way Salesforce matches records, so two spellings of one record share an
entry: a 15-character Id and its 18-character form are one key; an external id is compared
case-insensitively unless its field is case-sensitive. Values are kept as short keyed hashes:
the key is the field's config fingerprint, so a changed mapping makes every stored hash of
that field differ without a migration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from hashlib import blake2b
from typing import Any
from urllib.parse import urlsplit

import msgspec

DEFAULT_LEDGER_URL = "sqlite:///.target-salesforce-crm/ledger.sqlite"  # under the working dir
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?$")
_HASH_BYTES = 8
_KEY_BYTES = 32

_canonical_json = msgspec.json.Encoder(order="sorted").encode


def _checksum(id15: str) -> str:
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << offset for offset, char in enumerate(id15[start:start + 5])
                   if "A" <= char <= "Z")
        suffix += _CHECKSUM_ALPHABET[bits]
    return suffix


def salesforce_id_key(record_id: str) -> str:
    """The 18-character form of a Salesforce Id, the same for its 15-character form.

    An 18-character Id is matched case-insensitively by Salesforce: its case is rebuilt from
    the checksum, so any spelling of it gives the same key. Raises ValueError for a non-Id.
    """
    if not isinstance(record_id, str) or not _ID.match(record_id):
        raise ValueError(f"not a Salesforce Id: {record_id!r}")
    if len(record_id) == 15:
        return record_id + _checksum(record_id)
    suffix = record_id[15:].upper()
    restored = []
    for chunk, suffix_char in enumerate(suffix):
        bits = _CHECKSUM_ALPHABET.index(suffix_char)
        for offset, char in enumerate(record_id[chunk * 5:chunk * 5 + 5]):
            restored.append(char.upper() if bits >> offset & 1 else char.lower())
    id15 = "".join(restored)
    if _checksum(id15) != suffix:
        raise ValueError(f"not a Salesforce Id (checksum does not match): {record_id!r}")
    return id15 + suffix


def external_id_key(field: str, value: object, *, case_sensitive: bool) -> str:
    """The key of an upserted record: its external id field and value as Salesforce matches it.

    The field name is part of the key, so two external id fields never share entries.
    """
    text = str(value)
    return f"{field}={text if case_sensitive else text.lower()}"


def org_id_from_identity_url(identity_url: str) -> str:
    """The 18-character org id from a token response's ``id`` (``…/id/{orgId}/{userId}``)."""
    parts = [part for part in urlsplit(identity_url).path.split("/") if part]
    if len(parts) < 3 or parts[-3] != "id":
        raise ValueError(f"not a Salesforce identity URL: {identity_url!r}")
    return salesforce_id_key(parts[-2])


def config_fingerprint(*parts: object) -> str:
    """A short stable fingerprint of whatever config produced a field's value.

    Pass everything that changes what lands in the field (object, target field, source path,
    segment id, model, status translation …); JSON-encodable parts only.
    """
    return blake2b(_canonical_json(list(parts)), digest_size=_HASH_BYTES).hexdigest()


class Hasher:
    """Per-field and per-record hashes, with the fingerprint keys derived once per field.

    A field's hash is keyed by (field, fingerprint), so it changes when the value or the
    config changes. A record's hash covers all its fields, values and fingerprints at once: one
    encode and one hash per record, which is what lets an unchanged record skip per-field work.
    """

    def __init__(self) -> None:
        self._field_keys: dict[tuple[str, str], bytes] = {}

    def field_keys(self, fingerprints: Mapping[str, str]) -> dict[str, bytes]:
        """Field → hash key for this call's fingerprints (derived once per field and config)."""
        keys = {}
        for field, fingerprint in fingerprints.items():
            key = self._field_keys.get((field, fingerprint))
            if key is None:
                key = blake2b(f"{field}\x00{fingerprint}".encode(), digest_size=_KEY_BYTES).digest()
                self._field_keys[field, fingerprint] = key
            keys[field] = key
        return keys

    @staticmethod
    def field_hashes(payload: Mapping[str, Any], keys: Mapping[str, bytes]) -> dict[str, str]:
        """Field → short hash (16 hex digits) of the value as sent; None differs from absent."""
        return {
            field: blake2b(_canonical_json(value), digest_size=_HASH_BYTES,
                           key=keys[field]).hexdigest()
            for field, value in payload.items()
        }

    def record_hashes(
        self, payloads: Mapping[str, Mapping[str, Any]], fingerprints: Mapping[str, str]
    ) -> dict[str, int]:
        """Key → one signed 64-bit hash of the whole payload under its fields' fingerprints."""
        set_keys: dict[tuple[str, ...], bytes] = {}
        hashes = {}
        for record_key, payload in payloads.items():
            fields = tuple(payload)
            key = set_keys.get(fields)
            if key is None:
                signature = sorted((field, fingerprints[field]) for field in fields)
                key = blake2b(_canonical_json(signature), digest_size=_KEY_BYTES).digest()
                set_keys[fields] = key
            digest = blake2b(_canonical_json(payload), digest_size=_HASH_BYTES, key=key).digest()
            hashes[record_key] = int.from_bytes(digest, "big", signed=True)
        return hashes
