"""A real PostgreSQL server for the tests, started once per session on loopback.

It uses the machine's PostgreSQL binaries (``initdb``, ``pg_ctl``) in a throw-away data
directory; ``initdb`` refuses to run as root, so under root both run as the ``postgres`` user.
Connections on 127.0.0.1 need a password (scram-sha-256), as a shared ledger's would. Without
PostgreSQL the tests that need it are skipped locally, and fail under CI (``CI=true``), where
they must run.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

SUPERUSER = "postgres"
PASSWORD = "ledger-test-pw"


@dataclass(frozen=True)
class PostgresServer:
    """A running server: ``url(database)`` gives a SQLAlchemy URL for psycopg."""

    port: int
    data_dir: Path

    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        return f"postgresql+psycopg://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database (each test gets its own ledger); returns its URL."""
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        return self.url(name)


def _binaries() -> Path | None:
    """The folder holding ``initdb`` (Debian keeps it off PATH, beside the real pg_ctl)."""
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found:
            folder = Path(os.path.realpath(found)).parent
            if (folder / "initdb").exists():
                return folder
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], log: Path) -> None:
    result = subprocess.run(  # noqa: PLW1510 - the outcome is checked below, with the log
        _as_server_user(command), capture_output=True, text=True, timeout=120,
    )
    if result.returncode:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(
            f"{command[0]} failed ({result.returncode}): {result.stdout}{result.stderr}{tail}"
        )


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


def _start(bin_dir: Path, base: Path) -> PostgresServer:
    data_dir, log = base / "data", base / "server.log"
    password_file = base / "pw"
    password_file.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(base, SUPERUSER, SUPERUSER)
        shutil.chown(password_file, SUPERUSER, SUPERUSER)
    _run([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER, "--no-sync",
          "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
          "-E", "UTF8", "--locale=C"], log)
    for attempt in range(3):
        port = _free_port()
        options = (f"-p {port} -k {data_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        try:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log), "-o", options,
                  "-w", "-t", "60", "start"], log)
            return PostgresServer(port=port, data_dir=data_dir)
        except RuntimeError:
            if attempt == 2:
                raise
            time.sleep(0.5)  # the port was taken between probing and binding: try another
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session, stopped and removed at the end."""
    bin_dir = _binaries()
    if bin_dir is None:
        _unavailable("no initdb found (install the Debian package postgresql)")
        return
    if importlib.util.find_spec("psycopg") is None:  # the driver comes with the `postgres` extra
        _unavailable("psycopg is not installed (pip install '.[postgres]')")
        return
    base = Path(tempfile.mkdtemp(prefix="pg-ledger-"))
    os.chmod(base, 0o755)  # the server user must reach it
    try:
        server = _start(bin_dir, base)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(base, ignore_errors=True)
        _unavailable(f"the test server did not start: {exc}")
        return
    try:
        yield server
    finally:
        subprocess.run(  # noqa: PLW1510 - best effort: the folder goes either way
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(server.data_dir),
                             "-m", "immediate", "-w", "stop"]),
            capture_output=True, timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)
