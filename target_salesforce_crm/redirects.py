"""Records that moved: writes refused because a Lead was converted or a record merged away are
sent to the record that survived, in batches.

A refused entry is held here instead of being dead-lettered. The main thread turns held entries
into redirect chunks of up to ``batch_size``; a worker resolves a chunk's Ids with one query per
200 (``MoveResolver``) and sends the rewritten entries in one collections call. So N moved
records cost about ⌈N/200⌉ queries and ⌈N/200⌉ calls, and an Id resolved once goes straight to
its survivor for the rest of the run.
"""

from __future__ import annotations

import threading

from target_salesforce_crm.chunks import Chunk, Entry
from target_salesforce_crm.mapping import RecordMapper
from target_salesforce_crm.rejections import RecordRejected, Rejection, Rejector, Source
from target_salesforce_crm.salesforce.moves import MoveResolver
from target_salesforce_crm.stats import RunStats

CONVERTED = "converted_lead"
MERGED = "merged"
CONVERTED_CODE = "CANNOT_UPDATE_CONVERTED_LEAD"
MERGED_CODE = "ENTITY_IS_DELETED"  # also a plain delete: resolved to "no survivor"
MOVE_CODES = {CONVERTED_CODE: CONVERTED, MERGED_CODE: MERGED}
MAX_MOVES_PER_ENTRY = 3  # a record that keeps moving (converted, then merged ...) stops here


class Redirector:
    """Holds refused entries by kind and rewrites them for the record they moved to."""

    def __init__(self, resolver: MoveResolver, rejector: Rejector, stats: RunStats, *,
                 follow: frozenset[str], batch_size: int,
                 contact_mapper: RecordMapper | None = None,
                 dropped_contact_fields: tuple[str, ...] = ()) -> None:
        self.resolver = resolver
        self.rejector = rejector
        self.stats = stats
        self.follow = follow
        self.batch_size = batch_size
        self.contact_mapper = contact_mapper
        self.dropped_contact_fields = dropped_contact_fields
        self._held: dict[tuple[str, str, str], list[tuple[Chunk, Entry, str, str]]] = {}
        self._lock = threading.Lock()

    def wants(self, code: str, chunk: Chunk, entry: Entry) -> bool:
        """True when a refusal with ``code`` should be followed rather than dead-lettered
        (updates by Id only: an upsert's key follows the record by itself)."""
        kind = MOVE_CODES.get(code)
        return (kind in self.follow and chunk.external_id_field is None
                and entry.moves < MAX_MOVES_PER_ENTRY
                and (kind != CONVERTED or self.contact_mapper is not None))

    def hold(self, chunk: Chunk, entry: Entry, code: str, message: str) -> None:
        kind = MOVE_CODES[code]
        group = (kind, chunk.object_type, chunk.source.stream)
        with self._lock:
            self._held.setdefault(group, []).append((chunk, entry, code, message))

    def ready(self, *, flush: bool) -> list[Chunk]:
        """Redirect chunks to submit: full ones, or every held entry with ``flush``."""
        chunks = []
        with self._lock:
            for group, held in list(self._held.items()):
                while len(held) >= self.batch_size or (flush and held):
                    batch, held[:] = held[:self.batch_size], held[self.batch_size:]
                    chunks.append(_redirect_chunk(group[0], batch))
                if not held:
                    del self._held[group]
        return chunks

    def pending(self) -> bool:
        with self._lock:
            return bool(self._held)

    def resolve(self, chunk: Chunk) -> Chunk:
        """One redirect chunk → the chunk to send to the survivors (entries that have none
        are dead-lettered with their original error)."""
        keys = [entry.key for entry in chunk.entries]
        if chunk.redirect == CONVERTED:
            targets = self.resolver.converted_contacts(keys)
            target_object = "Contact"
        else:
            targets = self.resolver.survivors(chunk.object_type, keys)
            target_object = chunk.object_type
        source = Source(chunk.source.stream, target_object, chunk.source.stats)
        moved: dict[str, Entry] = {}  # by survivor: two moved records may share one
        for entry, (code, message) in zip(chunk.entries, chunk.refusals, strict=True):
            target = targets.get(entry.key)
            if target is None:
                self._reject(entry, Rejection(code, message, origin="salesforce"))
                continue
            rewritten = self._rewrite(chunk, entry, target, target_object)
            if rewritten is None:
                continue
            earlier = moved.get(target)
            if earlier is None:
                moved[target] = rewritten
            else:  # later values win, field by field, as for any two records of one Id
                earlier.payload.update(rewritten.payload)
                earlier.records.extend(rewritten.records)
        if moved:
            self.stats.redirected(source.stats, chunk.redirect or MERGED,
                                  sum(len(e.records) for e in moved.values()))
        segment_fields = chunk.segment_fields
        if chunk.redirect == CONVERTED and self.contact_mapper is not None:
            segment_fields = tuple(spec.name for _, spec, _ in self.contact_mapper.segments)
        return Chunk(source=source, segment_fields=segment_fields, entries=list(moved.values()))

    def _rewrite(self, chunk: Chunk, entry: Entry, target: str, target_object: str
                 ) -> Entry | None:
        if target_object == chunk.object_type or self.contact_mapper is None:
            return Entry(target, {**entry.payload, "id": target}, list(entry.records),
                         entry.moves + 1, entry.memberships)
        # a converted Lead: its records mapped again with the Contact mapping
        payload: dict = {"attributes": {"type": target_object}, "id": target}
        try:
            for _, record in entry.records:
                self.contact_mapper.map_onto(record, payload)
        except RecordRejected as exc:
            self._reject(entry, exc.rejection)
            return None
        if self.dropped_contact_fields:
            self.stats.dropped_on_conversion(chunk.stats, list(self.dropped_contact_fields))
        return Entry(target, payload, list(entry.records), entry.moves + 1, entry.memberships)

    def _reject(self, entry: Entry, rejection: Rejection) -> None:
        self.rejector.reject(rejection, entry.key, entry.records)


def _redirect_chunk(kind: str, held: list[tuple[Chunk, Entry, str, str]]) -> Chunk:
    first = held[0][0]
    return Chunk(source=first.source, segment_fields=first.segment_fields,
                 entries=[entry for _, entry, _, _ in held], redirect=kind,
                 refusals=[(code, message) for _, _, code, message in held])
