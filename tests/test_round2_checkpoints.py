"""Checkpoints in process, with the real Dispatcher and PendingIndex and calls the test lets
land one by one: which STATE is safe, and when."""

from __future__ import annotations

import threading
import time

from target_salesforce_crm.checkpoints import Checkpoints
from target_salesforce_crm.delivery import Chunk, Dispatcher, Entry
from target_salesforce_crm.rejections import Source
from target_salesforce_crm.runtime import PendingIndex
from target_salesforce_crm.stats import StreamStats

SOURCE = Source("contacts", "Contact", StreamStats("Contact"))


class Org:
    """A deliver function whose calls land when the test says so (or fail)."""

    def __init__(self) -> None:
        self.release: dict[str, threading.Event] = {}
        self.failing: set[str] = set()
        self.moved: set[str] = set()  # refused as moved: held for a redirect
        self.held: list[Entry] = []
        self.dispatcher: Dispatcher | None = None

    def deliver(self, chunk: Chunk) -> None:
        key = chunk.entries[0].key
        self.release.setdefault(key, threading.Event()).wait(10)
        if key in self.failing:
            raise RuntimeError(f"call for {key} failed")
        for entry in chunk.entries:
            if entry.key in self.moved:
                assert self.dispatcher is not None
                self.dispatcher.held(entry)  # as Deliverer.on_hold does
                self.held.append(entry)

    def land(self, key: str) -> None:
        self.release.setdefault(key, threading.Event()).set()


class Pipeline:
    def __init__(self) -> None:
        self.org = Org()
        self.pending = PendingIndex()
        self.dispatcher = Dispatcher(4, self.org.deliver)
        self.org.dispatcher = self.dispatcher
        self.checkpoints = Checkpoints(self.pending, self.dispatcher)
        self.dispatcher.on_submit = self.checkpoints.note_sent
        self.holder: dict[str, Entry] = {}

    def read(self, key: str) -> None:
        entry = Entry(key, {"Id": key}, [(SOURCE, {})])
        self.holder[key] = entry
        assert self.pending.open("Contact", entry, self.holder) is None

    def send(self, *keys: str) -> None:
        for key in keys:
            del self.holder[key]
        self.pending.release_all("Contact", keys)
        self.dispatcher.submit(Chunk(SOURCE, (), [Entry(k, {"Id": k}) for k in keys]))

    def safe_after(self, *landed: str) -> object:
        """Let those calls land, then the STATE the checkpoints hand out (waiting for the call's
        thread to finish, just after its answer)."""
        for key in landed:
            self.org.land(key)
        deadline = time.monotonic() + 5
        while (safe := self.checkpoints.take_safe()) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return safe


def test_a_state_waits_for_its_pending_records_and_only_the_calls_sent_before_it():
    run = Pipeline()
    run.read("a")
    run.checkpoints.arrived({"offset": 1})  # "a" is still pending: not safe yet
    run.read("b")
    run.checkpoints.arrived({"offset": 2})
    assert run.checkpoints.take_safe() is None
    run.send("a", "b")  # chunk 1 carries both
    run.read("c")
    run.send("c")  # chunk 2: read after both STATEs
    run.org.land("c")
    time.sleep(0.1)
    assert run.checkpoints.take_safe() is None  # chunk 1 is still in flight
    assert run.safe_after("a") == {"offset": 2}  # chunk 2 is not needed for it
    assert run.checkpoints.take_safe() is None  # handed out once
    run.dispatcher.shutdown()


def test_a_failed_call_holds_back_every_later_state_but_not_earlier_ones():
    run = Pipeline()
    run.org.failing.add("b")
    run.read("a")
    run.send("a")
    run.checkpoints.arrived({"offset": 1})
    run.read("b")
    run.send("b")
    run.checkpoints.arrived({"offset": 2})
    run.read("c")
    run.send("c")
    run.checkpoints.arrived({"offset": 3})
    for key in ("c", "b", "a"):
        run.org.land(key)
    run.dispatcher.wait_idle(raise_failure=False)
    assert run.checkpoints.take_safe() == {"offset": 1}
    assert run.checkpoints.take_safe() is None
    run.dispatcher.shutdown()


def test_heartbeats_with_no_new_record_collapse_into_one_waiting_state():
    run = Pipeline()
    run.read("a")
    for beat in range(1000):
        run.checkpoints.arrived({"offset": 1, "beat": beat})
    assert len(run.checkpoints._unsent) == 1  # memory stays flat
    run.send("a")
    assert run.safe_after("a") == {"offset": 1, "beat": 999}
    run.dispatcher.shutdown()


def test_a_record_held_for_a_redirect_holds_back_its_state_until_the_redirect_lands():
    run = Pipeline()
    run.org.moved.add("b")
    run.read("a")
    run.read("b")
    run.send("a", "b")
    run.checkpoints.arrived({"offset": 2})
    run.org.land("a")
    run.dispatcher.wait_idle()
    assert run.checkpoints.take_safe() is None  # "b" is held, not landed
    held = run.org.held.pop()
    run.org.moved.clear()
    run.dispatcher.submit(Chunk(SOURCE, (), [held]))  # the redirect chunk carries it
    run.checkpoints.arrived({"offset": 3})  # read after the redirect was sent
    assert run.checkpoints.take_safe() is None
    assert run.safe_after("b") == {"offset": 3}
    run.dispatcher.shutdown()
