"""The dead-letter path: refused at start-up when it cannot work, and a write failure during
the run stops it with one clear line and no STATE past what was accounted for.

SPEC §2 ``rejected_records_path``; every run is the real CLI against the emulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from _reliability import cli_command, no_traceback, write_config
from conftest import base_config, profile, run_target, seed_contacts, singer_lines


def _a_folder(tmp_path: Path) -> str:
    folder = tmp_path / "dead-letters"
    folder.mkdir()
    return str(folder)


def _under_a_file(tmp_path: Path) -> str:
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    return str(tmp_path / "notes.txt" / "rejected.jsonl")


def _in_a_read_only_folder(tmp_path: Path) -> str:
    if os.geteuid() == 0:  # root writes to any folder mode: sysfs refuses new files to all
        return "/sys/rejected.jsonl"
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder / "rejected.jsonl")


@pytest.mark.parametrize(
    ("make_path", "phrase"),
    [(_a_folder, "is a folder"), (_under_a_file, "is not writable"),
     (_in_a_read_only_folder, "is not writable")],
    ids=["a_folder", "under_a_file", "read_only_folder"],
)
def test_an_unusable_dead_letter_path_is_refused_before_any_network_call(make_path, phrase,
                                                                        emulator, tmp_path):
    ids = seed_contacts(emulator, 3)
    path = make_path(tmp_path)
    before = emulator.stats()["requests"]
    config = base_config(emulator, tmp_path, rejected_records_path=path)
    run = run_target(config, singer_lines("contacts", [profile(i, n) for n, i in
                                                       enumerate(ids)]), tmp_path)

    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, run.stderr[-2000:]
    assert "rejected_records_path" in errors[0] and phrase in errors[0]
    assert no_traceback(run.stderr)
    assert run.states == []
    assert emulator.stats()["requests"] == before  # not even a token request
    assert emulator.get("Contact", ids[0])["LastName"] == "Old0"


def test_a_full_disk_stops_the_run_with_one_line_and_no_state_past_the_failure(emulator,
                                                                               tmp_path):
    """/dev/full takes every write into the buffer and refuses it at flush (ENOSPC), as a full
    disk does; the flush comes before the next STATE, which is therefore never emitted."""
    ids = seed_contacts(emulator, 600)
    records = [profile(i, n) for n, i in enumerate(ids)]
    for n in range(200, 210):  # refused client-side: these need the dead-letter file
        records[n]["personalEmail"]["address"] = f"bad{n}-at-example.com"
    lines = singer_lines("contacts", records, state_every=200).splitlines(keepends=True)
    first_state = lines.index(json.dumps({"type": "STATE", "value": {"offset": 200}}) + "\n")
    config = base_config(emulator, tmp_path, rejected_records_path="/dev/full")
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as stderr, subprocess.Popen(
        cli_command(write_config(config, tmp_path)), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=tmp_path,
    ) as target:
        assert target.stdin is not None and target.stdout is not None
        states: list[dict] = []
        reader = threading.Thread(
            target=lambda: states.extend(json.loads(line) for line in target.stdout or []),
            daemon=True)
        reader.start()
        target.stdin.write("".join(lines[:first_state + 1]))
        target.stdin.flush()
        deadline = time.monotonic() + 20
        while emulator.get("Contact", ids[199])["LastName"] != "Last199":
            assert time.monotonic() < deadline, "the first 200 records never landed"
            time.sleep(0.05)
        time.sleep(2.5)  # the STATE for them goes out within a second or two
        try:
            target.stdin.write("".join(lines[first_state + 1:]))
            target.stdin.close()
        except BrokenPipeError:
            pass
        code = target.wait(timeout=60)
        reader.join(timeout=10)
    output = stderr_path.read_text()

    assert code == 1, output[-3000:]
    assert no_traceback(output), output[-3000:]
    errors = [line for line in output.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, errors
    assert "/dev/full" in errors[0] and "No space left on device" in errors[0]
    assert states == [{"offset": 200}]  # nothing after the lost dead letters
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed"
    assert "No space left on device" in report["error"]
