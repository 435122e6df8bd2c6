"""Which STATE may go out: the latest one whose records have all landed or been dead-lettered.

A STATE read from the tap covers every record read before it. It is remembered with two
watermarks: how many pending entries had been opened when it arrived (``PendingIndex.opened``),
and, once none of those is pending any more, the number of the last chunk submitted then. It
is safe when every chunk up to that number is done (``Dispatcher.done_through``). So STATE moves
on as calls land, without waiting for the whole pipeline to go quiet and without sending a
partial chunk just to move it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from target_salesforce_crm.delivery import Dispatcher
from target_salesforce_crm.runtime import PendingIndex


@dataclass
class _Waiting:
    state: Any
    opened: int  # entries opened before the STATE arrived
    last_chunk: int = 0  # set when none of those entries is pending any more


class Checkpoints:
    """STATE messages in arrival order, each waiting for what it covers."""

    def __init__(self, pending: PendingIndex, dispatcher: Dispatcher) -> None:
        self._pending = pending
        self._dispatcher = dispatcher
        self._unsent: deque[_Waiting] = deque()  # some of their records are still pending
        self._in_flight: deque[_Waiting] = deque()  # all sent; waiting for their chunks

    def arrived(self, state: Any) -> None:
        """Note a STATE the tap sent; the records read before it are what it covers."""
        opened = self._pending.opened
        last = self._unsent[-1] if self._unsent else (
            self._in_flight[-1] if self._in_flight else None)
        if last is not None and last.opened == opened:
            # no entry opened since: it covers the same records, so it is safe at the same time
            last.state = state
            return
        self._unsent.append(_Waiting(state, opened))
        self.note_sent()

    def note_sent(self) -> None:
        """After a chunk is submitted (``Dispatcher.on_submit``): the STATEs none of whose
        records is pending any more wait for the chunks submitted so far, and no later one."""
        oldest = self._pending.oldest()
        while self._unsent and (oldest is None or oldest > self._unsent[0].opened):
            waiting = self._unsent.popleft()
            waiting.last_chunk = self._dispatcher.last_number
            self._in_flight.append(waiting)

    def take_safe(self) -> Any | None:
        """The latest STATE whose records are all done (None if there is none new); it and
        every older one are forgotten."""
        self.note_sent()  # entries may also leave unsent by rejection, with no chunk
        done = self._dispatcher.done_through()
        safe = None
        while self._in_flight and self._in_flight[0].last_chunk <= done:
            safe = self._in_flight.popleft().state
        return safe
