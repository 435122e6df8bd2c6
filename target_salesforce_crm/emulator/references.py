"""Record keys by the value of reference fields, for the objects that declare some.

CampaignMember is looked up by campaign and by person: a membership check on
create, the merge and conversion follow-ups, and `WHERE ContactId IN (...)`
queries then read a few records instead of every member. `Org` keeps one
`ReferenceIndex` per such object in step with every write, delete, undelete
and purge. It covers live records and those in the Recycle Bin (queryAll sees
both), and remembers when each record entered its store, so candidates come
out in the order a scan of that store would meet them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from itertools import count
from typing import Any

from .ids import parse_id


def reference_key(value: Any) -> str | None:
    """How the org compares Id and reference values: the 15-character key of a well-formed
    Id, else the text itself; empty is null."""
    if value is None or value == "":
        return None
    return parse_id(value) or str(value)


class ReferenceIndex:
    """One object's record keys by the key of each indexed field's value, and each record's
    place in its store's order; inert (keeps nothing) without fields. Callers hold the org
    lock."""

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = tuple(fields)
        self._holders: dict[str, dict[str, set[str]]] = {name: {} for name in self.fields}
        self._places: dict[str, int] = {}
        self._ticks = count()

    def add(self, key: str, record: dict[str, Any]) -> None:
        """A record entered the store (created, seeded)."""
        if not self.fields:
            return
        self._places[key] = next(self._ticks)
        for name in self.fields:
            self._link(name, key, record.get(name))

    def remove(self, key: str, record: dict[str, Any]) -> None:
        """A record is gone for good (replaced by a seed, purged from the Recycle Bin)."""
        if not self.fields:
            return
        self._places.pop(key, None)
        for name in self.fields:
            self._unlink(name, key, record.get(name))

    def moved(self, key: str) -> None:
        """A record went to the Recycle Bin or came back: it is now last in its new store."""
        if self.fields:
            self._places[key] = next(self._ticks)

    def values(self, record: dict[str, Any]) -> tuple[Any, ...]:
        """The indexed fields' values, taken before a change so `changed` can re-file them."""
        return tuple(record.get(name) for name in self.fields)

    def changed(self, key: str, before: tuple[Any, ...], record: dict[str, Any]) -> None:
        """A record's fields were written in place (its place in the store stays)."""
        for name, old in zip(self.fields, before, strict=True):
            new = record.get(name)
            if reference_key(old) != reference_key(new):
                self._unlink(name, key, old)
                self._link(name, key, new)

    def holders(self, name: str, value_keys: Iterable[str]) -> set[str]:
        """Keys of the records (live or deleted) whose `name` has one of these value keys."""
        buckets = self._holders[name]
        found: set[str] = set()
        for value_key in value_keys:
            found.update(buckets.get(value_key, ()))
        return found

    def size(self, name: str, value_keys: Iterable[str]) -> int:
        """How many keys `holders` would return at most, without building the set."""
        buckets = self._holders[name]
        return sum(len(buckets.get(value_key, ())) for value_key in value_keys)

    def in_order(self, keys: Collection[str]) -> list[str]:
        """The keys in the order their records entered their store."""
        return sorted(keys, key=self._places.__getitem__)

    def _link(self, name: str, key: str, value: Any) -> None:
        value_key = reference_key(value)
        if value_key is not None:
            self._holders[name].setdefault(value_key, set()).add(key)

    def _unlink(self, name: str, key: str, value: Any) -> None:
        value_key = reference_key(value)
        bucket = self._holders[name].get(value_key) if value_key is not None else None
        if bucket is not None and value_key is not None:
            bucket.discard(key)
            if not bucket:
                del self._holders[name][value_key]
