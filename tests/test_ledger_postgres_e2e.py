"""skip_unchanged on the real PostgreSQL server (pg_server.py): the main scenarios of
_ledger_scenarios.py, two target processes at once on one ledger, and a killed run. Under CI
the server must start (pg_server fails the tests instead of skipping them)."""

from __future__ import annotations

import re
from collections.abc import Callable

import _ledger_scenarios as scenarios
import pytest
import sqlalchemy as sa
from pg_server import PostgresServer


def _database(server: PostgresServer, request: pytest.FixtureRequest, suffix: str = "") -> str:
    name = re.sub(r"[^a-z0-9]+", "_", f"e2e_{request.node.name}{suffix}".lower())[:60]
    return server.create_database(name)


@pytest.fixture
def ledger_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    return _database(postgres_server, request)


def _wipe(url: str) -> Callable[[], None]:
    def wipe() -> None:
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE sync_ledger, sync_ledger_meta")
        finally:
            engine.dispose()

    return wipe


def test_an_unchanged_rerun_sends_nothing(emulator, tmp_path, ledger_url):
    scenarios.unchanged_rerun_sends_nothing(emulator, tmp_path, ledger_url)


def test_one_percent_changed_sends_only_the_changed_field(emulator, tmp_path, ledger_url):
    scenarios.one_percent_changed_sends_only_the_changed_field(emulator, tmp_path, ledger_url)


def test_a_mapping_change_resends_that_field_everywhere(emulator, tmp_path, ledger_url):
    scenarios.a_mapping_change_resends_that_field_everywhere(emulator, tmp_path, ledger_url)


def test_full_resync_sends_everything(emulator, tmp_path, ledger_url):
    scenarios.full_resync_sends_everything(emulator, tmp_path, ledger_url)


def test_a_dropped_ledger_means_one_full_resend(emulator, tmp_path, ledger_url):
    scenarios.a_deleted_ledger_means_one_full_resend(emulator, tmp_path, ledger_url,
                                                     _wipe(ledger_url))


def test_rejected_records_are_sent_again(emulator, tmp_path, ledger_url):
    scenarios.rejected_records_are_sent_again(emulator, tmp_path, ledger_url)


def test_two_processes_share_one_postgresql_ledger(emulator, tmp_path, ledger_url):
    scenarios.two_processes_share_one_ledger(emulator, tmp_path, ledger_url)


@pytest.mark.slow
def test_a_killed_run_then_a_rerun_equals_a_clean_run(tmp_path, postgres_server, request):
    def new_ledger(case: str) -> str:
        return _database(postgres_server, request, f"_{case}")

    scenarios.killed_run_then_rerun_equals_a_clean_run(
        tmp_path, new_ledger, scenarios.KILL_POINTS["calls_in_flight"])
