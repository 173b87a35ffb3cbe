"""Duplicate events: the same event id seen again for an actor, with or without new content.

A producer that retries without idempotence sends an event twice; scored twice, one retry
storm would inflate the actor's volume windows. Each actor's state remembers fingerprints of
its last :data:`RECENT_EVENT_IDS` events (``ActorState.recent_ids``, 144 bytes). An event whose
id is among them is a *duplicate* when its bytes are the same (counted, neither scored nor
learnt) and a *conflict* when they differ (sent to the DLQ as ``duplicate_event_id``: two
different accesses cannot share an id, so one of them is a producer bug to look at).

Fingerprint: 40 bits of the event id's hash (crc32 and 8 bits of adler32) and 24 of the
message's (adler32): C, and stable across processes. A false *conflict* needs two of an actor's last 18 ids to
share 40 bits: about 1.5e-11 per event, one event in ~65 billion. The check is pure and the same
for the stream and offline ``score``, so a replay drops the same events.
"""

from __future__ import annotations

from collections.abc import Mapping
from zlib import adler32, crc32

from insiderwatch.models.events import AccessEvent, InvalidEvent
from insiderwatch.models.state import ActorState

__all__ = [
    "NEW",
    "DUPLICATE",
    "CONFLICT",
    "RECENT_EVENT_IDS",
    "DuplicateCheck",
    "duplicate_id_problem",
    "fingerprint",
]

NEW, DUPLICATE, CONFLICT = 0, 1, 2
RECENT_EVENT_IDS = 18
_ID_BYTES, _ENTRY_BYTES = 5, 8
_RING_BYTES = RECENT_EVENT_IDS * _ENTRY_BYTES


def fingerprint(event_id: str, raw: bytes) -> bytes:
    """The 8-byte ring entry of one event: 5 bytes of the id's hash, 3 of the raw message's.

    >>> fingerprint("e1", b"{}").hex()
    '088d8d27977500f9'
    """
    encoded = event_id.encode()
    entry = (crc32(encoded) << 32) | ((adler32(encoded) & 0xFF) << 24) | (adler32(raw) & 0xFFFFFF)
    return entry.to_bytes(_ENTRY_BYTES, "big")


def duplicate_id_problem(event: AccessEvent) -> InvalidEvent:
    """The dead-letter reason of a :data:`CONFLICT`: an id seen recently with other content."""
    return InvalidEvent(
        "duplicate_event_id",
        f"event id {event.event_id[:64]!r} was seen recently for actor "
        f"{event.actor_id[:64]!r} with other content",
        "event_id",
    )


def _find_id(ring: bytes, id_part: bytes) -> int:
    """Offset of the entry whose id part is ``id_part`` (``-1``: none); a match that
    straddles two entries is not one."""
    position = ring.find(id_part)
    while position >= 0 and position % _ENTRY_BYTES:
        position = ring.find(id_part, position + 1)
    return position


class DuplicateCheck:
    """Classifies a batch's events, in order, against their actors' recent ids.

    ``states`` is the batch's actor-state mapping. Existing states remember each new event at
    once; an actor without a state yet is remembered here and its state gets the ring in
    :meth:`settle`, once the detector has created it.

    >>> from insiderwatch.models.events import parse_event
    >>> raw = (b'{"event_id":"e1","timestamp":"2026-01-05T09:30:00Z","actor_id":"a1",'
    ...        b'"action":"view","resource_type":"review"}')
    >>> check = DuplicateCheck({})
    >>> event = parse_event(raw)
    >>> check.classify(event, raw), check.classify(event, raw), check.classify(event, raw + b" ")
    (0, 1, 2)
    """

    def __init__(self, states: Mapping[str, ActorState]) -> None:
        self._states = states
        self._fresh: dict[str, bytes] = {}

    def classify(self, event: AccessEvent, raw: bytes) -> int:
        """:data:`NEW` (and remember it), :data:`DUPLICATE` or :data:`CONFLICT`."""
        entry = fingerprint(event.event_id, raw)
        actor_id = event.actor_id
        state = self._states.get(actor_id)
        ring = self._fresh.get(actor_id, b"") if state is None else state.recent_ids
        if ring:
            position = ring.find(entry[:_ID_BYTES])
            if position >= 0:
                if position % _ENTRY_BYTES:  # straddling two entries: look on
                    position = _find_id(ring, entry[:_ID_BYTES])
                if position >= 0:
                    same = ring[position : position + _ENTRY_BYTES] == entry
                    return DUPLICATE if same else CONFLICT
            ring = (ring + entry)[-_RING_BYTES:]  # a longer ring of an older release shrinks
        else:
            ring = entry
        if state is None:
            self._fresh[actor_id] = ring
        else:
            state.recent_ids = ring
        return NEW

    def settle(self) -> None:
        """Give the actors created since :meth:`classify` saw them their rings."""
        for actor_id, ring in self._fresh.items():
            state = self._states.get(actor_id)
            if state is not None:
                state.recent_ids = ring
        self._fresh.clear()
