"""Record → sObject payload: Id checks, field converters, segment statuses.

Paths into records (nested or flattened by the SDK) are in ``paths.py``, the conversion of one
value for one field type in ``serialize.py``.

Everything that depends only on the configuration and the describe result is computed once in
``RecordMapper.__init__``; ``map()`` is the per-record hot path and does no look-ups beyond that.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from target_salesforce_crm.paths import Flattening, Path, json_list, json_object
from target_salesforce_crm.rejections import RecordRejected, Rejection
from target_salesforce_crm.salesforce.describe import (
    INTEGER_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    FieldSpec,
)
from target_salesforce_crm.salesforce.ids import normalize_id
from target_salesforce_crm.serialize import (
    as_bool,
    as_date,
    as_datetime,
    as_number,
    as_text,
    cut_utf16,
    refuse_non_finite,
    utf16_length,
)
from target_salesforce_crm.settings import SEGMENT_STATUSES, Settings

CHECKBOX_VALUES = {"realized": True, "existing": True, "exited": False}
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_SURROGATE = re.compile("[\ud800-\udfff]")
_KEY_TYPES = frozenset({"id", "reference"})  # their values are record Ids


@dataclass(frozen=True)
class MappedField:
    path: Path
    spec: FieldSpec
    convert: Callable[[Any], Any]  # value -> what the payload carries (or RecordRejected)


@dataclass(slots=True)
class Mapped:
    """One record ready to send: its merge key and the sObject payload."""

    key: str
    payload: dict[str, Any]
    memberships: dict[str, str] | None = None  # campaign segment id → status to hold


class RecordMapper:
    """Maps records of one stream to payloads for one Salesforce object."""

    def __init__(
        self, settings: Settings, object_type: str, fields: dict[str, FieldSpec],
        flattening: Flattening | None = None,
    ) -> None:
        """``flattening``: how the SDK flattened the records (None: it did not)."""
        self.object_type = object_type
        self.flattening = flattening
        self.upsert = settings.operation == "upsert"
        self.truncate = settings.string_overflow == "truncate"
        self.truncated: dict[str, int] = {}
        self._fitters: dict[str, Callable[[str], str]] = {}
        self.id_path = Path(settings.id_source, flattening)
        self.external_id: MappedField | None = None
        if self.upsert and settings.external_id_field and settings.external_id_source:
            self.external_id = self._mapped_field(
                settings.external_id_source, fields[settings.external_id_field.lower()]
            )
        self.key_path = self.external_id.path if self.external_id else self.id_path
        self.fields = tuple(
            self._mapped_field(m.source, fields[m.target.lower()])
            for m in settings.mappings_for(object_type)
        )
        self.membership_path = Path(settings.segment_membership_path, flattening)
        # the memberships object of a record; without flattening the path's own getter (no
        # JSON text to decode), which saves a call per record
        self._memberships: Callable[[dict[str, Any]], Any] = (
            self._decoded_memberships if flattening else self.membership_path.get
        )
        self.status_values = settings.segment_status_values
        self.segments = tuple(
            (
                m.segment_id,
                fields[m.mapping_id.lower()],
                Path(f"{settings.segment_membership_path}.{m.segment_id}.status", flattening),
            )
            for m in settings.field_segments
        )
        models = {m.segment_id: m.model for m in settings.field_segments}
        self._segment_plan = tuple(
            (segment_id, spec, status_path, *self._status_converter(models[segment_id], spec))
            for segment_id, spec, status_path in self.segments
        )
        self.campaign_segments = tuple(
            (m.segment_id,
             Path(f"{settings.segment_membership_path}.{m.segment_id}.status", flattening))
            for m in settings.campaign_segments
        )
        self.required_on_create = tuple(
            spec.name for spec in fields.values() if spec.required_on_create
        )
        self._required_mapped = tuple(
            f.spec.name for f in self.fields if f.spec.required_on_create
        )

    def map(self, record: dict[str, Any]) -> Mapped:
        """Build the payload for ``record``; raise RecordRejected naming what is wrong."""
        payload: dict[str, Any] = {"attributes": {"type": self.object_type}}
        if self.external_id is None:
            record_id, problem = normalize_id(self.id_path.get(record), self.object_type)
            if problem:
                raise RecordRejected(Rejection(problem.code, problem.message, ("Id",)))
            payload["id"] = key = str(record_id)
        for mapped in self.fields:
            value = mapped.path.get(record)
            if value is not None:
                payload[mapped.spec.name] = mapped.convert(value)
        if self.external_id is not None:
            key = self._external_key(self.external_id, record, payload)
        self._map_segments(record, payload)
        self._check_required(payload)
        if self.campaign_segments:
            return Mapped(key=key, payload=payload, memberships=self.memberships(record))
        return Mapped(key=key, payload=payload)

    def map_onto(self, record: dict[str, Any], payload: dict[str, Any]) -> None:
        """Fields and segment statuses of ``record`` onto ``payload``, without a key: how a
        record is written to the record it moved to (a converted Lead's Contact)."""
        for mapped in self.fields:
            value = mapped.path.get(record)
            if value is not None:
                payload[mapped.spec.name] = mapped.convert(value)
        self._map_segments(record, payload)
        self._check_required(payload)

    def _external_key(
        self, external_id: MappedField, record: dict[str, Any], payload: dict[str, Any]
    ) -> str:
        spec = external_id.spec
        value = external_id.path.get(record)
        if value is None or value == "":
            raise RecordRejected(
                Rejection(
                    "MISSING_EXTERNAL_ID",
                    f"the record has no value at {external_id.path.text} for {spec.name}",
                    (spec.name,),
                )
            )
        serialized = external_id.convert(value)
        payload[spec.name] = serialized
        text = str(serialized)
        return text if spec.case_sensitive else text.lower()

    def _map_segments(self, record: dict[str, Any], payload: dict[str, Any]) -> None:
        if not self.segments:
            return
        memberships = self._memberships(record)
        for segment_id, spec, status_path, convert, translate in self._segment_plan:
            if isinstance(memberships, dict):
                entry = memberships.get(segment_id)
                status = entry.get("status") if isinstance(entry, dict) else None
            else:  # no nested memberships: a flattened record may carry the status
                status = status_path.get(record)
            if status is None or status == "":
                continue
            if not isinstance(status, str):
                raise RecordRejected(
                    Rejection(
                        "INVALID_SEGMENT_STATUS",
                        f"the status of segment {segment_id} is not a string",
                        (spec.name,),
                    )
                )
            payload[spec.name] = convert(status if translate is None
                                         else translate.get(status, status))

    def _decoded_memberships(self, record: dict[str, Any]) -> Any:
        """The memberships object, decoded when the SDK flattened it into JSON text; None (or
        another non-object) sends each segment to its own status path, which also finds
        statuses flattened into separate keys."""
        memberships = self.membership_path.get(record)
        if memberships.__class__ is str:
            return json_object(memberships)
        return memberships

    def memberships(self, record: dict[str, Any]) -> dict[str, str] | None:
        """Campaign segments: the status each should hold (translated), by segment id."""
        if not self.campaign_segments:
            return None
        memberships = self._memberships(record)
        found = {}
        for segment_id, status_path in self.campaign_segments:
            if isinstance(memberships, dict):
                entry = memberships.get(segment_id)
                status = entry.get("status") if isinstance(entry, dict) else None
            else:
                status = status_path.get(record)
            if status is None or status == "":
                continue
            if not isinstance(status, str) or status not in SEGMENT_STATUSES:
                raise RecordRejected(Rejection(
                    "INVALID_SEGMENT_STATUS",
                    f"the status of segment {segment_id} is not one of "
                    f"{', '.join(SEGMENT_STATUSES)}", ()))
            found[segment_id] = status
        return found

    def _status_converter(self, model: str, spec: FieldSpec
                          ) -> tuple[Callable[[str], Any], dict[str, str] | None]:
        """Status → what the segment field receives under ``model``, built once per field: the
        conversion, and the translation (``segment_status_values``) applied before it, if any.
        ``map`` applies the translation itself: a wrapper function around the text fitter cost
        a call per segment."""
        translate = self.status_values
        if model == "checkbox":
            def to_checkbox(status: str) -> bool:
                if status not in CHECKBOX_VALUES:
                    raise RecordRejected(Rejection(
                        "INVALID_SEGMENT_STATUS",
                        f"{spec.name} (a checkbox segment) cannot hold the status; expected one "
                        f"of {', '.join(SEGMENT_STATUSES)}", (spec.name,)))
                return CHECKBOX_VALUES[status]
            return to_checkbox, None
        if model == "picklist":
            allowed = frozenset(spec.picklist_values)

            def to_picklist(value: str) -> str:
                if value not in allowed:
                    raise RecordRejected(Rejection(
                        "INVALID_SEGMENT_STATUS",
                        f"{spec.name} (a picklist segment) has no value for this status",
                        (spec.name,)))
                return value
            return to_picklist, translate
        return self._fitter(spec), translate

    def _check_required(self, payload: dict[str, Any]) -> None:
        """A required field mapped to an empty string would blank it: refuse the record."""
        if "" not in map(payload.get, self._required_mapped):
            return
        empty = [name for name in self._required_mapped if payload.get(name) == ""]
        if empty:
            raise RecordRejected(
                Rejection("REQUIRED_FIELD_MISSING",
                          f"required field(s) empty: {', '.join(empty)}", tuple(empty))
            )

    def missing_for_create(self, payload: dict[str, Any]) -> Rejection | None:
        """For upsert (which may create): the object's required fields, checked after merging."""
        if not self.upsert:
            return None
        missing = [n for n in self.required_on_create if payload.get(n) in (None, "")]
        if not missing:
            return None
        return Rejection(
            "REQUIRED_FIELD_MISSING",
            f"required field(s) missing for a record that may be created: {', '.join(missing)}",
            tuple(missing),
        )

    def _mapped_field(self, source: str, spec: FieldSpec) -> MappedField:
        return MappedField(Path(source, self.flattening), spec, self._converter(spec))

    def _converter(self, spec: FieldSpec) -> Callable[[Any], Any]:
        """The per-record conversion for one field, decided once from its describe type."""
        if spec.type == "multipicklist" and self.flattening:
            def listed(value: Any) -> Any:  # the SDK turned the list into JSON text
                if value.__class__ is str and value.startswith("["):
                    value = json_list(value)
                return self._serialize(spec, value)

            return listed
        if spec.type not in TEXT_TYPES or spec.type == "multipicklist":
            return functools.partial(self._serialize, spec)
        fit = self._fitter(spec)

        def text(value: Any) -> Any:
            return fit(value) if value.__class__ is str else self._serialize(spec, value)

        return text

    def _serialize(self, spec: FieldSpec, value: Any) -> Any:
        kind = spec.type
        if kind == "multipicklist" and isinstance(value, list):
            for item in value:
                refuse_non_finite(spec, item)
            value = ";".join(as_text(item) for item in value)
        refuse_non_finite(spec, value)
        if isinstance(value, (dict, list)):
            raise RecordRejected(
                Rejection(
                    "INVALID_FIELD_VALUE",
                    f"{spec.name} expects a {kind} but the record holds "
                    f"{'an object' if isinstance(value, dict) else 'a list'}",
                    (spec.name,),
                )
            )
        if kind in TEXT_TYPES:
            return self._fitter(spec)(as_text(value))
        if kind == "boolean":
            return as_bool(spec, value)
        if kind in INTEGER_TYPES or kind in NUMBER_TYPES:
            return as_number(spec, value, integer=kind in INTEGER_TYPES)
        if kind == "date":
            return as_date(spec, value)
        if kind == "datetime":
            return as_datetime(spec, value)
        return as_text(value)

    def _fitter(self, spec: FieldSpec) -> Callable[[str], str]:
        """Checks that a text fits ``spec`` (email syntax, length, encodable), or truncates;
        built once per field."""
        if spec.name not in self._fitters:
            self._fitters[spec.name] = self._new_fitter(spec)
        return self._fitters[spec.name]

    def _new_fitter(self, spec: FieldSpec) -> Callable[[str], str]:
        email = spec.type == "email"
        length = spec.length
        # a cut key is another key: two records would merge, or one would update a stranger
        key = spec.external_id or spec.type in _KEY_TYPES
        truncate = self.truncate and not email and not key
        never_cut = "; a key is never truncated" if key and self.truncate else ""
        truncated = self.truncated

        def fit(text: str) -> str:
            if email and text and not _EMAIL.fullmatch(text):
                raise RecordRejected(Rejection(
                    "INVALID_EMAIL_ADDRESS", f"{spec.name} is not a valid email address",
                    (spec.name,)))
            plain = text.isascii()
            if not plain and _SURROGATE.search(text):
                raise RecordRejected(Rejection(
                    "INVALID_FIELD_VALUE",
                    f"{spec.name} holds text that is not valid Unicode (a lone surrogate)",
                    (spec.name,)))
            # a character is 1 or 2 UTF-16 units: count them only when the text may not fit
            if length and len(text) > (length if plain else length // 2):
                size = len(text) if plain else utf16_length(text)
                if size <= length:
                    return text
                if truncate:
                    truncated[spec.name] = truncated.get(spec.name, 0) + 1
                    return text[:length] if plain else cut_utf16(text, length)
                raise RecordRejected(Rejection(
                    "STRING_TOO_LONG",
                    f"{spec.name} holds {size} characters (UTF-16 units, as Salesforce counts "
                    f"them); the field allows {length}{never_cut}",
                    (spec.name,)))
            return text

        return fit
