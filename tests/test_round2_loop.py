"""The read loop end to end: STATE follows what lands, heartbeats do not hold records back,
and SIGTERM while the tap is quiet ends the run promptly.

SPEC §3 "Delivery": STATE only for what landed or was dead-lettered. Every run is the real CLI
in a subprocess, fed by a tap process through a pipe, against the emulator on loopback.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _reliability import cli_command, no_traceback, write_config
from conftest import SEGMENT_FIELDS, base_config, profile, run_target, seed_contacts, singer_lines

from target_salesforce_crm.emulator import Emulator

LIMIT_EXIT_CODE = 3

# A tap: writes the lines of a file, then a STATE heartbeat every ``gap`` seconds (``beats``
# of them), then stays connected ``linger`` seconds more before closing its stdout.
_TAP = (
    "import json, sys, time\n"
    "path, beats, gap, linger = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), "
    "float(sys.argv[4])\n"
    "sys.stdout.write(open(path).read())\n"
    "sys.stdout.flush()\n"
    "last = json.loads(open(path).read().splitlines()[-1])['value']\n"
    "for beat in range(beats):\n"
    "    time.sleep(gap)\n"
    "    sys.stdout.write(json.dumps({'type': 'STATE', 'value': {**last, 'beat': beat}}) + '\\n')\n"
    "    sys.stdout.flush()\n"
    "time.sleep(linger)\n"
)


class Pipeline:
    """``tap | target`` as two processes; the target's STATE lines are kept with the time
    each arrived."""

    def __init__(self, config: dict, directory: Path, text: str, *, beats: int = 0,
                 gap: float = 0.0, linger: float = 0.0) -> None:
        input_path = directory / "tap_output.jsonl"
        input_path.write_text(text)
        self.started = time.monotonic()
        self.tap = subprocess.Popen(
            [sys.executable, "-c", _TAP, str(input_path), str(beats), str(gap), str(linger)],
            stdout=subprocess.PIPE,
        )
        self.stderr_path = directory / "stderr.txt"
        self._stderr = self.stderr_path.open("w")
        self.target = subprocess.Popen(
            cli_command(write_config(config, directory)), stdin=self.tap.stdout,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, cwd=directory,
        )
        assert self.tap.stdout is not None
        self.tap.stdout.close()  # the target holds the pipe's only reading end
        self.states: list[tuple[float, dict]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.target.stdout is not None
        for line in self.target.stdout:
            if line.strip():
                self.states.append((time.monotonic() - self.started, json.loads(line)))

    def finish(self, timeout: float = 60) -> int:
        try:
            code = self.target.wait(timeout=timeout)
        finally:
            if self.tap.poll() is None:
                self.tap.kill()
            self.tap.wait()
            self._reader.join(timeout=10)
            if self.target.stdout is not None:
                self.target.stdout.close()
            self._stderr.close()
        return code

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


def _landed_prefix(emu: Emulator, ids: list[str]) -> int:
    """How many of the records, in input order, landed before the first that did not."""
    for n, record_id in enumerate(ids):
        if emu.get("Contact", record_id)["LastName"] != f"Last{n}":
            return n
    return len(ids)


@pytest.mark.parametrize("stop", ["api_usage_share", "storage_full"])
def test_a_limit_stop_in_the_first_minute_leaves_the_furthest_state_that_landed(stop, tmp_path):
    """Before, a stop within the first minute emitted no STATE, and the next day re-sent the
    same records forever when the allowance was small."""
    faults = ({"daily_api_limit": 8} if stop == "api_usage_share"
              else {"storage_full_after": 1100})
    emu = Emulator(segment_fields=SEGMENT_FIELDS, latency_ms=50, **faults).start()
    try:
        ids = seed_contacts(emu, 3000)
        config = base_config(emu, tmp_path, batch_size=200, max_concurrency=2,
                             api_usage_limit_percent=100)
        run = run_target(config, singer_lines(
            "contacts", [profile(i, n) for n, i in enumerate(ids)], state_every=200), tmp_path)

        assert run.returncode == LIMIT_EXIT_CODE, run.stderr[-3000:]
        assert no_traceback(run.stderr)
        landed = _landed_prefix(emu, ids)
        assert landed >= 400  # several calls landed before the stop
        # the last STATE is the furthest one the landed records allow, and none went further
        assert run.states, run.stderr[-3000:]
        assert run.states[-1] == {"offset": landed // 200 * 200}
        assert all(state["offset"] <= landed for state in run.states)
        assert run.report["status"] == "failed"
        assert run.rejected == []
    finally:
        emu.stop()


@pytest.mark.parametrize(("write_api", "count"), [("collections", 2000), ("auto", 4000)])
def test_state_advances_while_records_stream_not_only_at_the_end(tmp_path, write_api, count):
    """A steady stream: STATE comes out while later records are still being read, and every
    call but the last carries a full batch. (auto holds a new stream's first records for up
    to HOLD_SECONDS, in case it reaches bulk_threshold: its stream is longer.)"""
    emu = Emulator(segment_fields=SEGMENT_FIELDS, latency_ms=20).start()
    try:
        ids = seed_contacts(emu, count)
        text = singer_lines("contacts", [profile(i, n) for n, i in enumerate(ids)],
                            state_every=100)
        # the tap sends 550 records a second (the pipe is read as they come)
        lines = text.splitlines(keepends=True)
        slices = ["".join(lines[k:k + 110]) for k in range(0, len(lines), 110)]
        slow_tap = (
            "import sys, time, json\n"
            "for part in json.load(open(sys.argv[1])):\n"
            "    sys.stdout.write(part); sys.stdout.flush(); time.sleep(0.2)\n"
        )
        parts = tmp_path / "parts.json"
        parts.write_text(json.dumps(slices))
        with subprocess.Popen([sys.executable, "-c", slow_tap, str(parts)],
                              stdout=subprocess.PIPE) as tap:
            target = subprocess.run(
                cli_command(write_config(base_config(emu, tmp_path, write_api=write_api),
                                         tmp_path)),
                stdin=tap.stdout, capture_output=True, text=True, timeout=120, check=False)
        states = [json.loads(line) for line in target.stdout.splitlines() if line.strip()]

        assert target.returncode == 0, target.stderr[-3000:]
        assert states[-1] == {"offset": count}
        assert len(states) >= 3  # emitted as records landed, at most once a second
        offsets = [state["offset"] for state in states]
        assert offsets == sorted(set(offsets))
        assert _landed_prefix(emu, ids) == count
        assert emu.stats()["collections_calls"] == count // 200  # no extra partial calls
    finally:
        emu.stop()


def test_state_heartbeats_do_not_hold_records_back(tmp_path):
    """A CDC tap: 150 records, then a STATE heartbeat every 2 s. The records land and their
    STATE is emitted after 5 s without a RECORD, while the heartbeats go on."""
    emu = Emulator(segment_fields=SEGMENT_FIELDS).start()
    try:
        ids = seed_contacts(emu, 150)
        text = singer_lines("contacts", [profile(i, n) for n, i in enumerate(ids)])
        run = Pipeline(base_config(emu, tmp_path), tmp_path, text, beats=6, gap=2.0)
        landed_at = None
        while run.target.poll() is None and time.monotonic() - run.started < 30:
            if landed_at is None and emu.get("Contact", ids[-1])["LastName"] == "Last149":
                landed_at = time.monotonic() - run.started
            time.sleep(0.05)
        code = run.finish()

        assert code == 0, run.stderr[-3000:]
        tap_closed_at = 12.0  # 6 heartbeats, 2 s apart
        assert landed_at is not None and 4.5 <= landed_at < tap_closed_at - 1, landed_at
        first_time, first_state = run.states[0]
        assert first_time < tap_closed_at, run.states  # emitted while the tap was connected
        assert first_state["offset"] == 150
        assert run.states[-1][1] == {"offset": 150, "beat": 5}
        assert _landed_prefix(emu, ids) == 150
        assert emu.stats()["collections_calls"] == 1
    finally:
        emu.stop()


def _three_streams(ids: list[str]) -> str:
    """50 records in each of three streams, then one STATE: only partial chunks, which the
    idle flush sends together."""
    lines = []
    for k, stream in enumerate(("web", "app", "store")):
        text = singer_lines(stream, [profile(i, 50 * k + n) for n, i in
                                     enumerate(ids[50 * k:50 * k + 50])])
        lines += text.splitlines(keepends=True)[:-1]  # each stream's own STATE left out
    lines.append(json.dumps({"type": "STATE", "value": {"offset": 150}}) + "\n")
    return "".join(lines)


@pytest.mark.parametrize("flush", ["call_in_flight", "waiting_for_a_call_slot"])
def test_sigterm_while_the_tap_is_quiet_ends_the_run_promptly(flush, tmp_path):
    """A slow org (2 s a call) and a quiet tap: SIGTERM comes during the idle flush, either
    while its call is in flight or while the flush itself waits for a free call slot. The run
    waits only for the calls it already has, emits their STATE and reports "interrupted"."""
    latency = 2.0
    emu = Emulator(segment_fields=SEGMENT_FIELDS, latency_ms=int(latency * 1000)).start()
    try:
        if flush == "call_in_flight":
            ids = seed_contacts(emu, 450)
            text = singer_lines("contacts", [profile(i, n) for n, i in enumerate(ids)])
            # two full calls go out at once; the last 50 records wait for the idle flush
            config = base_config(emu, tmp_path, max_concurrency=4)
            calls_before_flush, calls_needed = 2, 1
        else:
            ids = seed_contacts(emu, 150)
            text = _three_streams(ids)
            # one call at a time, two queued: the flush's third chunk waits for a slot
            config = base_config(emu, tmp_path, max_concurrency=1)
            calls_before_flush, calls_needed = 0, 3
        run = Pipeline(config, tmp_path, text, linger=120)
        deadline = time.monotonic() + 30
        while (emu.stats()["collections_calls"] <= calls_before_flush
               and time.monotonic() < deadline):
            time.sleep(0.05)
        time.sleep(0.3)  # the idle flush has begun; its calls take 2 s each
        assert emu.stats()["collections_calls"] == calls_before_flush + 1
        signalled = time.monotonic()
        run.target.send_signal(signal.SIGTERM)
        try:
            code = run.target.wait(timeout=calls_needed * latency + 4)
        except subprocess.TimeoutExpired:
            run.target.kill()
            run.finish()
            pytest.fail("the target kept running after SIGTERM while the tap was quiet")
        took = time.monotonic() - signalled
        run.finish()

        assert code == 0, run.stderr[-3000:]
        assert took < calls_needed * latency + 3
        assert no_traceback(run.stderr)
        assert run.states[-1][1] == {"offset": len(ids)}
        assert _landed_prefix(emu, ids) == len(ids)
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["status"] == "interrupted"
        assert report["totals"]["updated"] == len(ids)
    finally:
        emu.stop()
