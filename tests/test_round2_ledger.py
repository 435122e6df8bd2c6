"""StateLedger in process, with the real Dispatcher and PendingIndex and calls the test lets
land one by one: which STATE is safe, and when."""

from __future__ import annotations

import threading
import time

from target_salesforce_crm.checkpoints import StateLedger
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

    def deliver(self, chunk: Chunk) -> None:
        key = chunk.entries[0].key
        self.release.setdefault(key, threading.Event()).wait(10)
        if key in self.failing:
            raise RuntimeError(f"call for {key} failed")

    def land(self, key: str) -> None:
        self.release.setdefault(key, threading.Event()).set()


class Pipeline:
    def __init__(self) -> None:
        self.org = Org()
        self.pending = PendingIndex()
        self.dispatcher = Dispatcher(4, self.org.deliver)
        self.ledger = StateLedger(self.pending, self.dispatcher)
        self.dispatcher.on_submit = self.ledger.note_sent
        self.holder: dict[str, Entry] = {}

    def read(self, key: str) -> None:
        entry = Entry(key, {"Id": key}, [(SOURCE, {})])
        self.holder[key] = entry
        self.pending.hold("Contact", entry, self.holder)

    def send(self, *keys: str) -> None:
        for key in keys:
            del self.holder[key]
            self.pending.release("Contact", key)
        self.dispatcher.submit(Chunk(SOURCE, (), [Entry(k, {"Id": k}) for k in keys]))

    def safe_after(self, *landed: str) -> object:
        """Let those calls land, then the STATE the ledger hands out (waiting for the call's
        thread to finish, just after its answer)."""
        for key in landed:
            self.org.land(key)
        deadline = time.monotonic() + 5
        while (safe := self.ledger.take_safe()) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return safe


def test_a_state_waits_for_its_pending_records_and_only_the_calls_sent_before_it():
    run = Pipeline()
    run.read("a")
    run.ledger.arrived({"offset": 1})  # "a" is still pending: not safe yet
    run.read("b")
    run.ledger.arrived({"offset": 2})
    assert run.ledger.take_safe() is None
    run.send("a", "b")  # chunk 1 carries both
    run.read("c")
    run.send("c")  # chunk 2: read after both STATEs
    run.org.land("c")
    time.sleep(0.1)
    assert run.ledger.take_safe() is None  # chunk 1 is still in flight
    assert run.safe_after("a") == {"offset": 2}  # chunk 2 is not needed for it
    assert run.ledger.take_safe() is None  # handed out once
    run.dispatcher.shutdown()


def test_a_failed_call_holds_back_every_later_state_but_not_earlier_ones():
    run = Pipeline()
    run.org.failing.add("b")
    run.read("a")
    run.send("a")
    run.ledger.arrived({"offset": 1})
    run.read("b")
    run.send("b")
    run.ledger.arrived({"offset": 2})
    run.read("c")
    run.send("c")
    run.ledger.arrived({"offset": 3})
    for key in ("c", "b", "a"):
        run.org.land(key)
    run.dispatcher.wait_idle(raise_failure=False)
    assert run.ledger.take_safe() == {"offset": 1}
    assert run.ledger.take_safe() is None
    run.dispatcher.shutdown()


def test_heartbeats_with_no_new_record_collapse_into_one_waiting_state():
    run = Pipeline()
    run.read("a")
    for beat in range(1000):
        run.ledger.arrived({"offset": 1, "beat": beat})
    assert len(run.ledger._unsent) == 1  # memory stays flat
    run.send("a")
    assert run.safe_after("a") == {"offset": 1, "beat": 999}
    run.dispatcher.shutdown()
