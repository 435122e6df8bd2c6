"""Typed, validated view of the target's configuration.

The JSON schema in ``target.py`` checks types; this module checks what a schema cannot
(credentials per auth flow, host safety, mapping ids) and fills in defaults once, so the
rest of the code reads plain attributes instead of ``config.get(...)`` with fallbacks.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

OBJECT_TYPES = ("Contact", "Lead")
AUTH_FLOWS = ("password", "client_credentials", "jwt", "refresh_token")
OPERATIONS = ("update", "upsert")
OVERFLOW_POLICIES = ("truncate", "reject")
MOVE_POLICIES = ("follow", "reject")  # converted_leads, merged_records
DEFAULT_MOVE_POLICY = "follow"
DEFAULT_API_VERSION = "63.0"
MAX_BATCH_SIZE = 200
MAX_SEGMENT_MAPPINGS = 25

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

_MY_DOMAIN_PREFIX = (
    r"(?!root|status)[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?"
    r"(?:--[a-z0-9]{1,20})?"
    r"(?:\.(?:sandbox|develop|scratch|demo|patch|trailblaze|free))?"
)
_MY_DOMAIN_HOST = re.compile(rf"^{_MY_DOMAIN_PREFIX}\.my\.salesforce\.com$")
_MY_DOMAIN_BARE = re.compile(rf"^{_MY_DOMAIN_PREFIX}$")
_GENERIC_LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
_API_VERSION = re.compile(r"^\d{2,3}\.0$")
_FIELD_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_LOOPBACK_NAMES = ("localhost",)


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
    mapping_id: str


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
    credentials: dict[str, str] = field(repr=False)

    def object_for_stream(self, stream_name: str) -> str:
        return self.stream_object_types.get(stream_name, self.object_type)

    def mappings_for(self, object_type: str) -> tuple[FieldMapping, ...]:
        return self.field_mappings[object_type]


def login_host_problem(login_url: str) -> str | None:
    """Return why ``login_url`` is unsafe or malformed, or None when it is acceptable."""
    try:
        parts = urlsplit(login_url)
        port = parts.port
    except ValueError:
        return "login_url is not a valid URL (check the host and port)"
    host = (parts.hostname or "").lower()
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "login_url must not contain user information ('user@host')"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "login_url must be a scheme and host only, with no path, query or fragment"
    if parts.scheme == "http":
        if not _is_loopback(host):
            return (
                "login_url uses plain http:// to a non-loopback host; http:// is only accepted "
                "for 127.0.0.1, localhost or [::1] (the local emulator)"
            )
        return None
    if parts.scheme != "https":
        return f"login_url must start with https:// (got scheme {parts.scheme!r})"
    if port not in (None, 443):
        return "login_url must not carry a port for a Salesforce host"
    if host in _GENERIC_LOGIN_HOSTS or _MY_DOMAIN_HOST.match(host):
        return None
    return (
        "login_url host must be login.salesforce.com, test.salesforce.com or "
        f"<name>.my.salesforce.com (got {host!r})"
    )


def login_url_from_domain(domain: str) -> str:
    """Turn a My Domain name or host into the token host URL; raises SettingsError."""
    value = domain.strip().lower()
    if value in _GENERIC_LOGIN_HOSTS or _MY_DOMAIN_HOST.match(value):
        return f"https://{value}"
    if _MY_DOMAIN_BARE.match(value):
        return f"https://{value}.my.salesforce.com"
    raise SettingsError(
        [
            f"domain {domain!r} is not a valid My Domain: use a bare name such as 'acme' or "
            "'acme--uat.sandbox', or a host such as 'acme.my.salesforce.com' "
            "(letters, digits and hyphens, at most 40 characters, no scheme, path, port or '@')"
        ]
    )


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalize_mapping_id(mapping_id: str) -> str:
    """Complete a segment field name without the custom suffix (``Seg_A`` → ``Seg_A__c``)."""
    return mapping_id if mapping_id.lower().endswith("__c") else f"{mapping_id}__c"


def parse_settings(config: dict[str, Any]) -> Settings:
    """Validate cross-field rules and apply defaults; raise SettingsError listing every problem."""
    problems: list[str] = []
    auth_flow = config.get("auth_flow") or "password"
    login_url = _resolve_login_url(config, problems)
    credentials = _collect_credentials(config, auth_flow, problems)
    if auth_flow == "client_credentials" and urlsplit(login_url).hostname in _GENERIC_LOGIN_HOSTS:
        problems.append(
            "auth_flow 'client_credentials' must log in at your My Domain (set domain, e.g. "
            "'acme'), not at login.salesforce.com or test.salesforce.com"
        )

    api_version = str(config.get("api_version") or DEFAULT_API_VERSION).lstrip("vV")
    if not _API_VERSION.match(api_version):
        problems.append(f"api_version {api_version!r} must look like '63.0'")

    object_type = config.get("salesforce_id_type") or "Contact"
    if object_type not in OBJECT_TYPES:
        problems.append(f"salesforce_id_type {object_type!r} must be one of Contact, Lead")
    stream_object_types = dict(config.get("stream_object_types") or {})
    for stream, obj in stream_object_types.items():
        if obj not in OBJECT_TYPES:
            problems.append(
                f"stream_object_types[{stream!r}] is {obj!r}; it must be one of Contact, Lead"
            )

    operation = config.get("operation") or "update"
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
    segment_mappings = _segment_mappings(config.get("segment_mappings") or [], problems)

    batch_size = int(_default(config.get("batch_size"), MAX_BATCH_SIZE))
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        problems.append(f"batch_size {batch_size} must be between 1 and {MAX_BATCH_SIZE}")
    max_concurrency = int(_default(config.get("max_concurrency"), 4))
    if max_concurrency < 1:
        problems.append(f"max_concurrency {max_concurrency} must be at least 1")
    usage_limit = float(_default(config.get("api_usage_limit_percent"), 90))
    if not 1 <= usage_limit <= 100:
        problems.append(f"api_usage_limit_percent {usage_limit:g} must be between 1 and 100")
    string_overflow = config.get("string_overflow") or "truncate"
    if string_overflow not in OVERFLOW_POLICIES:
        problems.append(f"string_overflow {string_overflow!r} must be 'truncate' or 'reject'")
    moves = {}
    for name in ("converted_leads", "merged_records"):
        moves[name] = str(_default(config.get(name), DEFAULT_MOVE_POLICY))
        if moves[name] not in MOVE_POLICIES:
            problems.append(f"{name} {moves[name]!r} must be one of {', '.join(MOVE_POLICIES)}")

    if problems:
        raise SettingsError(problems)
    return Settings(
        auth_flow=auth_flow,
        login_url=login_url,
        api_version=api_version,
        object_type=object_type,
        stream_object_types=stream_object_types,
        operation=operation,
        id_source=config.get("id_source") or "crmID",
        external_id_field=external_id_field,
        external_id_source=external_id_source,
        field_mappings=field_mappings,
        segment_mappings=segment_mappings,
        segment_membership_path=config.get("segment_membership_path") or "segmentMembership.ups",
        segment_status_values={
            str(k): str(v) for k, v in (config.get("segment_status_values") or {}).items()
        },
        string_overflow=string_overflow,
        batch_size=batch_size,
        max_concurrency=max_concurrency,
        api_usage_limit_percent=usage_limit,
        rejected_records_path=config.get("rejected_records_path") or None,
        run_report_path=config.get("run_report_path") or None,
        dry_run=bool(config.get("dry_run", False)),
        converted_leads=moves["converted_leads"],
        merged_records=moves["merged_records"],
        credentials=credentials,
    )


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


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


def _segment_mappings(raw: list[dict[str, Any]], problems: list[str]) -> tuple[SegmentMapping, ...]:
    if len(raw) > MAX_SEGMENT_MAPPINGS:
        problems.append(
            f"segment_mappings has {len(raw)} entries; Salesforce CRM allows at most "
            f"{MAX_SEGMENT_MAPPINGS} segment fields at once"
        )
    seen: dict[str, int] = {}
    result = []
    for index, item in enumerate(raw):
        segment_id = str(item.get("segment_id") or "").strip()
        mapping_id = str(item.get("mapping_id") or "")
        if not segment_id or not mapping_id:
            problems.append(f"segment_mappings[{index}] needs both 'segment_id' and 'mapping_id'")
            continue
        if any(ch.isspace() for ch in mapping_id):
            problems.append(
                f"segment_mappings[{index}].mapping_id {mapping_id!r} contains spaces; "
                "use the field's API name with '_' instead"
            )
            continue
        field_name = normalize_mapping_id(mapping_id)
        if not _FIELD_API_NAME.match(field_name):
            problems.append(
                f"segment_mappings[{index}].mapping_id {mapping_id!r} is not a field API name"
            )
            continue
        key = field_name.lower()
        if key in seen:
            problems.append(
                f"segment_mappings[{index}].mapping_id {mapping_id!r} duplicates "
                f"segment_mappings[{seen[key]}]; each segment needs its own field"
            )
            continue
        seen[key] = index
        result.append(SegmentMapping(segment_id=segment_id, mapping_id=field_name))
    return tuple(result)
