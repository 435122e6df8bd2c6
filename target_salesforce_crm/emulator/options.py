"""Behaviour switches of the emulated org, settable at run time (`set_options`,
`POST /__emulator__/options`, `Emulator.set_options`, CLI flags)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .org import Org

QUERY_BATCH_SIZE = 2000  # rows per query page unless Sforce-Query-Options asks for fewer
MAX_URI_BYTES = 16384
CUSTOM_FIELD_LIMIT = 500  # custom fields per object: Enterprise and Developer Edition (§6)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# each switch (an attribute of `Org`) and the check its values must pass
OPTIONS: dict[str, Any] = {
    "query_batch_size": _positive_int,
    "max_uri_bytes": _positive_int,
    # "View and Edit Converted Leads" permission: converted Leads accept updates (§2.2)
    "converted_lead_edits": lambda value: isinstance(value, bool),
    # the error for an Id that is neither live nor in the Recycle Bin (purged, or never was)
    "missing_record_error": lambda value: value in ("ENTITY_IS_DELETED",
                                                    "INVALID_CROSS_REFERENCE_KEY"),
    # a CampaignMember.Status that is not one of its campaign's labels (§3.4, unverified)
    "unknown_status": lambda value: value in ("reject", "default", "store"),
    "custom_field_limit": _positive_int,
}


def current(org: Org) -> dict[str, Any]:
    return {name: getattr(org, name) for name in OPTIONS}


def set_options(org: Org, values: dict[str, Any]) -> dict[str, Any]:
    """Change switches after checking every one, so a bad value changes nothing."""
    for name, value in values.items():
        allowed = OPTIONS.get(name)
        if allowed is None:
            raise ValueError(f"unknown option: {name}")
        if not allowed(value):
            raise ValueError(f"invalid value for {name}: {value!r}")
    with org.lock:
        for name, value in values.items():
            setattr(org, name, value)
        return current(org)
