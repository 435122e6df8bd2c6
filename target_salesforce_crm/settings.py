"""Typed, validated view of the target's configuration.

The JSON schema (``config_schema.py``) checks types; this module checks what a schema cannot
(credentials per auth flow, host safety, mapping ids) and fills in defaults, so the rest of the
code reads plain attributes instead of ``config.get(...)`` with fallbacks. Every default, allowed
value and bound is stated here once; the schema and the messages below are built from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# from ledger_keys, not ledger: SQLAlchemy is imported only by runs that open a ledger
from target_salesforce_crm.ledger_keys import DEFAULT_LEDGER_URL
from target_salesforce_crm.login_hosts import (
    domain_login_url,
    is_generic_login_host,
    login_host_problem,
)

OBJECT_TYPES = ("Contact", "Lead")
AUTH_FLOWS = ("password", "client_credentials", "jwt", "refresh_token")
OPERATIONS = ("update", "upsert")
OVERFLOW_POLICIES = ("truncate", "reject")
MOVE_POLICIES = ("follow", "reject")  # converted_leads, merged_records
WRITE_APIS = ("auto", "collections", "bulk")
MIN_BULK_THRESHOLD = 1
MIN_BULK_JOB_TIMEOUT_S = 1
BULK_MIN_API_VERSION = 41.0  # Bulk API 2.0 ingest exists from this version on
DEFAULT_API_VERSION = "63.0"
MIN_BATCH_SIZE = 1
MAX_BATCH_SIZE = 200  # records per sObject Collections call, the API's limit
MIN_CONCURRENCY = 1
MIN_USAGE_PERCENT = 1
MAX_USAGE_PERCENT = 100
MAX_SEGMENT_MAPPINGS = 25  # field-based segments (Adobe's Salesforce CRM destination)
MAX_CAMPAIGN_SEGMENTS = 250  # campaign segments (Adobe's audiences-per-destination guardrail)
SEGMENT_STATUSES = ("realized", "existing", "exited")  # segmentMembership.ups.<id>.status
SEGMENT_MODELS = ("text_area", "checkbox", "picklist", "campaign")
FIELD_SEGMENT_MODELS = SEGMENT_MODELS[:3]
CAMPAIGN_EXIT_POLICIES = ("status", "delete")

# The value a setting takes when the config leaves it out (or, for text, leaves it empty).
DEFAULTS: dict[str, Any] = {
    "auth_flow": AUTH_FLOWS[0],
    "api_version": DEFAULT_API_VERSION,
    "salesforce_id_type": OBJECT_TYPES[0],
    "operation": OPERATIONS[0],
    "id_source": "crmID",
    "segment_membership_path": "segmentMembership.ups",
    "string_overflow": OVERFLOW_POLICIES[0],
    "batch_size": MAX_BATCH_SIZE,
    "max_concurrency": 4,
    "api_usage_limit_percent": 90,
    "dry_run": False,
    "segment_model": SEGMENT_MODELS[0],
    "campaign_exit": CAMPAIGN_EXIT_POLICIES[0],
    "provision_segment_fields": False,
    "provision_permission_set": "Target_Salesforce_CRM",
    "converted_leads": MOVE_POLICIES[0],
    "merged_records": MOVE_POLICIES[0],
    "write_api": WRITE_APIS[0],
    "bulk_threshold": 10_000,
    "bulk_job_timeout_s": 3600,
    "skip_unchanged": False,
    "ledger_url": DEFAULT_LEDGER_URL,
    "full_resync": False,
}

REFERENCE_FIELD_MAPPINGS: dict[str, list[dict[str, str]]] = {
    "Contact": [
        {"source": "person.name.lastName", "target": "LastName"},
        {"source": "person.name.firstName", "target": "FirstName"},
        {"source": "personalEmail.address", "target": "Email"},
    ],
    "Lead": [
        {"source": "person.name.lastName", "target": "LastName"},
        {"source": "b2b.companyName", "target": "Company"},
        {"source": "personalEmail.address", "target": "Email"},
    ],
}

SECRET_SETTINGS = (
    "username", "password", "security_token", "client_id", "client_secret", "refresh_token",
    "private_key",
)
REQUIRED_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "password": ("username", "password", "client_id", "client_secret"),
    "client_credentials": ("client_id", "client_secret"),
    "jwt": ("client_id", "username", "private_key"),
    "refresh_token": ("client_id", "refresh_token"),
}

_API_VERSION = re.compile(r"^\d{2,3}\.0$")
_FIELD_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_OBJECT_CHOICES = ", ".join(OBJECT_TYPES)


class SettingsError(ValueError):
    """A configuration problem; ``problems`` holds one message per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class FieldMapping:
    source: str
    target: str


@dataclass(frozen=True)
class SegmentMapping:
    segment_id: str
    mapping_id: str  # a field API name, or for the campaign model a Campaign Id or name
    model: str = SEGMENT_MODELS[0]

    @property
    def is_field(self) -> bool:
        return self.model != "campaign"


@dataclass(frozen=True)
class Settings:
    """Every setting the target honours, with defaults applied."""

    auth_flow: str
    login_url: str
    api_version: str
    object_type: str
    stream_object_types: dict[str, str]
    operation: str
    id_source: str
    external_id_field: str | None
    external_id_source: str | None
    field_mappings: dict[str, tuple[FieldMapping, ...]]
    segment_mappings: tuple[SegmentMapping, ...]
    segment_model: str  # for entries of segment_mappings that name no model
    campaign_exit: str
    provision_segment_fields: bool
    provision_permission_set: str
    segment_membership_path: str
    segment_status_values: dict[str, str]
    string_overflow: str
    batch_size: int
    max_concurrency: int
    api_usage_limit_percent: float
    rejected_records_path: str | None
    run_report_path: str | None
    dry_run: bool
    converted_leads: str
    merged_records: str
    write_api: str
    bulk_threshold: int
    bulk_job_timeout_s: int
    skip_unchanged: bool
    ledger_url: str = field(repr=False)  # a PostgreSQL URL may carry a password
    full_resync: bool
    credentials: dict[str, str] = field(repr=False)

    def object_for_stream(self, stream_name: str) -> str:
        return self.stream_object_types.get(stream_name, self.object_type)

    @property
    def field_segments(self) -> tuple[SegmentMapping, ...]:
        """Segments whose status is a field on the Contact or Lead itself."""
        return tuple(m for m in self.segment_mappings if m.is_field)

    @property
    def campaign_segments(self) -> tuple[SegmentMapping, ...]:
        return tuple(m for m in self.segment_mappings if not m.is_field)

    def mappings_for(self, object_type: str) -> tuple[FieldMapping, ...]:
        return self.field_mappings[object_type]


def login_url_from_domain(domain: str) -> str:
    """Turn a My Domain name or host into the token host URL; raises SettingsError."""
    login_url = domain_login_url(domain)
    if login_url is not None:
        return login_url
    raise SettingsError(
        [
            f"domain {domain!r} is not a valid My Domain: use a bare name such as 'acme' or "
            "'acme--uat.sandbox', or a host such as 'acme.my.salesforce.com' "
            "(letters, digits and hyphens, at most 40 characters, no scheme, path, port or '@')"
        ]
    )


def normalize_mapping_id(mapping_id: str) -> str:
    """Complete a segment field name without the custom suffix (``Seg_A`` → ``Seg_A__c``)."""
    return mapping_id if mapping_id.lower().endswith("__c") else f"{mapping_id}__c"


def parse_settings(config: dict[str, Any]) -> Settings:
    """Validate cross-field rules and apply defaults; raise SettingsError listing every problem."""
    problems: list[str] = []
    auth_flow = _text(config, "auth_flow")
    login_url = _resolve_login_url(config, problems)
    credentials = _collect_credentials(config, auth_flow, problems)
    if auth_flow == "client_credentials" and is_generic_login_host(login_url):
        problems.append(
            "auth_flow 'client_credentials' must log in at your My Domain (set domain, e.g. "
            "'acme'), not at login.salesforce.com or test.salesforce.com"
        )

    api_version = str(_text(config, "api_version")).lstrip("vV")
    if not _API_VERSION.match(api_version):
        problems.append(f"api_version {api_version!r} must look like {DEFAULT_API_VERSION!r}")

    object_type = _text(config, "salesforce_id_type")
    if object_type not in OBJECT_TYPES:
        problems.append(f"salesforce_id_type {object_type!r} must be one of {_OBJECT_CHOICES}")
    stream_object_types = dict(config.get("stream_object_types") or {})
    for stream, obj in stream_object_types.items():
        if obj not in OBJECT_TYPES:
            problems.append(
                f"stream_object_types[{stream!r}] is {obj!r}; it must be one of {_OBJECT_CHOICES}"
            )

    operation = _text(config, "operation")
    external_id_field = config.get("external_id_field") or None
    external_id_source = config.get("external_id_source") or None
    if operation == "upsert":
        if not external_id_field:
            problems.append("operation 'upsert' needs external_id_field (the Salesforce field)")
        elif not _FIELD_API_NAME.match(external_id_field):
            problems.append(f"external_id_field {external_id_field!r} is not a field API name")
        if not external_id_source:
            problems.append("operation 'upsert' needs external_id_source (the record path)")

    field_mappings = _field_mappings(config.get("field_mappings"), problems)
    segment_model = _text(config, "segment_model")
    if segment_model not in SEGMENT_MODELS:
        problems.append(f"segment_model {segment_model!r} must be one of "
                        f"{', '.join(SEGMENT_MODELS)}")
        segment_model = DEFAULTS["segment_model"]
    segment_mappings = _segment_mappings(config.get("segment_mappings") or [], segment_model,
                                         problems)
    campaign_exit = _text(config, "campaign_exit")
    if campaign_exit not in CAMPAIGN_EXIT_POLICIES:
        choices = " or ".join(repr(policy) for policy in CAMPAIGN_EXIT_POLICIES)
        problems.append(f"campaign_exit {campaign_exit!r} must be {choices}")
    permission_set = str(_text(config, "provision_permission_set"))
    if not _FIELD_API_NAME.match(permission_set):
        problems.append(f"provision_permission_set {permission_set!r} is not an API name "
                        "(letters, digits and '_', starting with a letter)")

    batch_size = int(_value(config, "batch_size"))
    if not MIN_BATCH_SIZE <= batch_size <= MAX_BATCH_SIZE:
        problems.append(
            f"batch_size {batch_size} must be between {MIN_BATCH_SIZE} and {MAX_BATCH_SIZE}"
        )
    max_concurrency = int(_value(config, "max_concurrency"))
    if max_concurrency < MIN_CONCURRENCY:
        problems.append(f"max_concurrency {max_concurrency} must be at least {MIN_CONCURRENCY}")
    usage_limit = float(_value(config, "api_usage_limit_percent"))
    if not MIN_USAGE_PERCENT <= usage_limit <= MAX_USAGE_PERCENT:
        problems.append(
            f"api_usage_limit_percent {usage_limit:g} must be between {MIN_USAGE_PERCENT} "
            f"and {MAX_USAGE_PERCENT}"
        )
    string_overflow = _text(config, "string_overflow")
    if string_overflow not in OVERFLOW_POLICIES:
        choices = " or ".join(repr(policy) for policy in OVERFLOW_POLICIES)
        problems.append(f"string_overflow {string_overflow!r} must be {choices}")
    moves = {}
    for name in ("converted_leads", "merged_records"):
        moves[name] = _text(config, name)
        if moves[name] not in MOVE_POLICIES:
            choices = " or ".join(repr(policy) for policy in MOVE_POLICIES)
            problems.append(f"{name} {moves[name]!r} must be {choices}")

    write_api = _text(config, "write_api")
    if write_api not in WRITE_APIS:
        problems.append(f"write_api {write_api!r} must be one of {', '.join(WRITE_APIS)}")
    bulk_threshold = int(_value(config, "bulk_threshold"))
    if bulk_threshold < MIN_BULK_THRESHOLD:
        problems.append(f"bulk_threshold {bulk_threshold} must be at least {MIN_BULK_THRESHOLD}")
    bulk_job_timeout_s = int(_value(config, "bulk_job_timeout_s"))
    if bulk_job_timeout_s < MIN_BULK_JOB_TIMEOUT_S:
        problems.append(f"bulk_job_timeout_s {bulk_job_timeout_s} must be at least "
                        f"{MIN_BULK_JOB_TIMEOUT_S}")
    if write_api == "bulk" and _API_VERSION.match(api_version) and \
            float(api_version) < BULK_MIN_API_VERSION:
        problems.append(f"write_api 'bulk' needs api_version {BULK_MIN_API_VERSION:.1f} or later "
                        f"(Bulk API 2.0); api_version is {api_version!r}")

    if problems:
        raise SettingsError(problems)
    return Settings(
        auth_flow=auth_flow,
        login_url=login_url,
        api_version=api_version,
        object_type=object_type,
        stream_object_types=stream_object_types,
        operation=operation,
        id_source=_text(config, "id_source"),
        external_id_field=external_id_field,
        external_id_source=external_id_source,
        field_mappings=field_mappings,
        segment_mappings=segment_mappings,
        segment_model=segment_model,
        campaign_exit=campaign_exit,
        provision_segment_fields=bool(_value(config, "provision_segment_fields")),
        provision_permission_set=permission_set,
        segment_membership_path=_text(config, "segment_membership_path"),
        segment_status_values={
            str(k): str(v) for k, v in (config.get("segment_status_values") or {}).items()
        },
        string_overflow=string_overflow,
        batch_size=batch_size,
        max_concurrency=max_concurrency,
        api_usage_limit_percent=usage_limit,
        rejected_records_path=config.get("rejected_records_path") or None,
        run_report_path=config.get("run_report_path") or None,
        dry_run=bool(_value(config, "dry_run")),
        converted_leads=moves["converted_leads"],
        merged_records=moves["merged_records"],
        write_api=write_api,
        bulk_threshold=bulk_threshold,
        bulk_job_timeout_s=bulk_job_timeout_s,
        skip_unchanged=bool(_value(config, "skip_unchanged")),
        ledger_url=str(_text(config, "ledger_url")),
        full_resync=bool(_value(config, "full_resync")),
        credentials=credentials,
    )


def _text(config: dict[str, Any], name: str) -> Any:
    """A text setting; missing or empty means the default."""
    return config.get(name) or DEFAULTS[name]


def _value(config: dict[str, Any], name: str) -> Any:
    """A number or flag; only a missing one means the default (0 is a value to check)."""
    value = config.get(name)
    return DEFAULTS[name] if value is None else value


def _resolve_login_url(config: dict[str, Any], problems: list[str]) -> str:
    login_url = (config.get("login_url") or "").strip()
    domain = (config.get("domain") or "").strip()
    if login_url and domain:
        try:
            login_url_from_domain(domain)
        except SettingsError as exc:
            problems.extend(exc.problems)
    if login_url:
        problem = login_host_problem(login_url)
        if problem:
            problems.append(problem)
        return login_url.rstrip("/")
    if domain:
        try:
            return login_url_from_domain(domain)
        except SettingsError as exc:
            problems.extend(exc.problems)
            return ""
    problems.append("set domain (your My Domain, e.g. 'acme') or login_url to choose the org")
    return ""


def _collect_credentials(config: dict[str, Any], auth_flow: str, problems: list[str]) -> dict:
    if auth_flow not in AUTH_FLOWS:
        problems.append(f"auth_flow {auth_flow!r} must be one of {', '.join(AUTH_FLOWS)}")
        return {}
    missing = [name for name in REQUIRED_CREDENTIALS[auth_flow] if not config.get(name)]
    if missing:
        problems.append(f"auth_flow {auth_flow!r} needs {', '.join(missing)} (not set)")
    return {name: str(config[name]) for name in SECRET_SETTINGS if config.get(name)}


def _field_mappings(
    configured: list[dict[str, Any]] | None, problems: list[str]
) -> dict[str, tuple[FieldMapping, ...]]:
    """The same configured mapping for every object, or each object's reference mapping."""
    if configured is None:
        return {
            obj: tuple(FieldMapping(**item) for item in REFERENCE_FIELD_MAPPINGS[obj])
            for obj in OBJECT_TYPES
        }
    mappings = []
    for index, item in enumerate(configured):
        source, target = item.get("source"), item.get("target")
        if not source or not target:
            problems.append(f"field_mappings[{index}] needs both 'source' and 'target'")
        elif not _FIELD_API_NAME.match(target):
            problems.append(f"field_mappings[{index}].target {target!r} is not a field API name")
        else:
            mappings.append(FieldMapping(source=source, target=target))
    return dict.fromkeys(OBJECT_TYPES, tuple(mappings))


def _segment_mappings(raw: list[dict[str, Any]], default_model: str, problems: list[str]
                      ) -> tuple[SegmentMapping, ...]:
    seen: dict[tuple[bool, str], int] = {}
    result = []
    for index, item in enumerate(raw):
        segment_id = str(item.get("segment_id") or "").strip()
        mapping_id = str(item.get("mapping_id") or "")
        model = str(item.get("model") or default_model)
        if not segment_id or not mapping_id:
            problems.append(f"segment_mappings[{index}] needs both 'segment_id' and 'mapping_id'")
            continue
        if model not in SEGMENT_MODELS:
            problems.append(f"segment_mappings[{index}].model {model!r} must be one of "
                            f"{', '.join(SEGMENT_MODELS)}")
            continue
        if model == "campaign":
            reference = mapping_id  # a Campaign Id or a Campaign name (names may have spaces)
        elif any(ch.isspace() for ch in mapping_id):
            problems.append(
                f"segment_mappings[{index}].mapping_id {mapping_id!r} contains spaces; "
                "use the field's API name with '_' instead"
            )
            continue
        else:
            reference = normalize_mapping_id(mapping_id)
            if not _FIELD_API_NAME.match(reference):
                problems.append(
                    f"segment_mappings[{index}].mapping_id {mapping_id!r} is not a field API name"
                )
                continue
        key = (model == "campaign", reference.lower())
        if key in seen:
            what = "campaign" if model == "campaign" else "field"
            problems.append(
                f"segment_mappings[{index}].mapping_id {mapping_id!r} duplicates "
                f"segment_mappings[{seen[key]}]; each segment needs its own {what}"
            )
            continue
        seen[key] = index
        result.append(SegmentMapping(segment_id=segment_id, mapping_id=reference, model=model))
    campaigns = sum(1 for item in raw if (item.get("model") or default_model) == "campaign")
    fields = len(raw) - campaigns
    if fields > MAX_SEGMENT_MAPPINGS:
        problems.append(
            f"segment_mappings has {fields} entries for segment fields (text_area, checkbox, "
            f"picklist); at most {MAX_SEGMENT_MAPPINGS} segment fields may be active at once"
        )
    if campaigns > MAX_CAMPAIGN_SEGMENTS:
        problems.append(
            f"segment_mappings has {campaigns} campaign segments; at most "
            f"{MAX_CAMPAIGN_SEGMENTS} are allowed"
        )
    return tuple(result)
