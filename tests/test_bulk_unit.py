"""Fast in-process tests of the Bulk API 2.0 path: settings, CSV spool, result matching, client."""

from __future__ import annotations

from typing import Any

import pytest

from target_salesforce_crm.settings import SettingsError, parse_settings

BASE: dict[str, Any] = {
    "login_url": "http://127.0.0.1:1",
    "username": "u@example.com",
    "password": "p",
    "client_id": "c",
    "client_secret": "s",
}


# --------------------------------------------------------------------------- settings


def test_bulk_settings_defaults() -> None:
    settings = parse_settings(dict(BASE))
    assert (settings.write_api, settings.bulk_threshold, settings.bulk_job_timeout_s) == (
        "auto", 10_000, 3600)


def test_bulk_settings_given() -> None:
    settings = parse_settings(
        {**BASE, "write_api": "bulk", "bulk_threshold": 5, "bulk_job_timeout_s": 60})
    assert (settings.write_api, settings.bulk_threshold, settings.bulk_job_timeout_s) == (
        "bulk", 5, 60)


@pytest.mark.parametrize(
    ("override", "named"),
    [({"write_api": "soap"}, "write_api"), ({"bulk_threshold": 0}, "bulk_threshold"),
     ({"bulk_job_timeout_s": 0}, "bulk_job_timeout_s")],
)
def test_bad_bulk_settings_are_refused(override: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings({**BASE, **override})
    assert len(caught.value.problems) == 1
    assert named in caught.value.problems[0]
