"""The role-pulse table in the stream: every worker counts, every worker reads all counts.

The pulse (:mod:`insiderwatch.models.pulse`) needs each role's events per event-time hour
summed over *all* partitions, while a worker sees only its own. So each worker publishes its
partitions' counts to a compacted topic (setting ``topic.pulse``), one record per
(partition, hour, role) holding that partition's running count and the last input offset it
covers, and every worker reads the whole topic into a :class:`PulseTable`. The worker's own
counts are applied at once, without waiting for the round trip.

Exactly once per input record: a count covers a partition's records up to ``through`` (an
input offset), so when a partition moves to another worker, or a worker restarts, records at
or before ``through`` are not counted again, whatever offset the consumer resumes from.
Counts are published before the batch's input offsets are committed, so none is lost either
(see :meth:`PulseTable.count`). A record of the topic that cannot be read is skipped and
counted (``insiderwatch_pulse_records_unreadable_total``): it is the worker's own
bookkeeping, not an access event.

Stale bound: an event in hour ``H`` reads hours ``H - 8 .. H - 3``. The stream gives the offline
value (:func:`insiderwatch.models.pulse.count_events` over the whole input) when every
partition's records of those hours have been counted, here or by another worker, before the
event is scored: while no partition trails another by more than
:data:`~insiderwatch.models.pulse.PULSE_LAG_HOURS` of event time (plus the ~1 s round trip
through the topic) and no event arrives later than that.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import orjson

from insiderwatch.models.events import AccessEvent
from insiderwatch.models.pulse import (
    PULSE_LAG_HOURS,
    PULSE_SPAN_HOURS,
    HourlyCounts,
    set_pulses,
)

Usual = Mapping[str, Sequence[float]]

__all__ = ["PulseTable", "pulse_record", "KEEP_HOURS"]

log = logging.getLogger("insiderwatch")
# Hours kept behind the newest one counted: the span the pulse reads, with a day to spare
# for late events and skew between partitions.
KEEP_HOURS = PULSE_LAG_HOURS + PULSE_SPAN_HOURS + 24
_MAX_ROLE_BYTES = 256


def pulse_record(role: str, hour: int, partition: int, count: int, through: int) -> bytes:
    """The value of one pulse record (its key is ``partition/hour/role``).

    >>> pulse_record("support", 490000, 3, 12, 8041)
    b'{"role":"support","hour":490000,"partition":3,"count":12,"through":8041}'
    """
    return orjson.dumps(
        {"role": role, "hour": hour, "partition": partition, "count": count, "through": through}
    )


class PulseTable:
    """The counts of every partition, by (role, hour), and the pulses they give.

    Only roles that have a pulse in the model are counted (``usual``): that bounds the
    table by the model's roles, whatever roles the input names.

    >>> table = PulseTable({"support": [5.0] * 168})
    >>> events = [AccessEvent(event_id=str(i), timestamp=f"2026-01-01T0{h}:00:00Z", actor_id="a",
    ...                       action="v", resource_type="r", actor_role="support")
    ...           for i, h in enumerate([0] * 60 + [4])]
    >>> published = table.count(events, [(0, i) for i in range(61)])
    >>> sorted(key for key, _ in published)
    [b'0/490896/support', b'0/490900/support']
    >>> table.set_pulses(events); round(events[-1].role_pulse, 4)
    0.5978
    >>> table.count(events[:1], [(0, 0)])  # offset 0 of partition 0 is already counted
    []
    """

    def __init__(self, usual: Usual) -> None:
        self.usual = dict(usual)
        self.totals = HourlyCounts()
        self._counts: dict[tuple[int, int, str], int] = {}  # (partition, hour, role) -> events
        self._through: dict[int, int] = {}  # partition -> last input offset counted
        self._newest_hour = 0
        self._forgotten_before = 0
        self.unreadable = 0

    def use_model(self, usual: Usual) -> None:
        """A reloaded model: its roles' pulses from now on (counts kept)."""
        self.usual = dict(usual)

    def through(self, partition: int) -> int:
        """The last input offset of ``partition`` that the counts cover (-1: none)."""
        return self._through.get(partition, -1)

    def count(
        self, events: Sequence[AccessEvent], positions: Sequence[tuple[int, int]]
    ) -> list[tuple[bytes, bytes]]:
        """Count ``events`` (at input ``positions``: partition, offset) that no count covers
        yet; return the records to publish: ``(key, value)`` of each count that changed.

        The caller publishes them, and has them acknowledged, before it commits the input
        offsets: a count published without its offsets committed is not counted twice
        (``through``), but offsets committed without their count would be counted never.
        """
        # One pass that only tallies (a batch holds a partition's records in offset order,
        # each once), then the tables once per (partition, hour, role).
        through = self._through
        tally: Counter[tuple[int, int, str]] = Counter()
        newest: dict[int, int] = {}
        for event, (partition, offset) in zip(events, positions, strict=True):
            if offset > through.get(partition, -1):
                # hour_of (models.pulse) written out: once per event on the worker's path
                tally[(partition, int(event.ts // 3600), event.actor_role)] += 1
                newest[partition] = offset
        through.update(newest)
        usual, counts = self.usual, self._counts
        changed = sorted(key for key in tally if key[2] in usual)
        for key in changed:
            n = tally[key]
            counts[key] = counts.get(key, 0) + n
            self.totals.add(key[2], key[1], float(n))
        records = [
            (
                f"{partition}/{hour}/{role}".encode(),
                pulse_record(role, hour, partition, self._counts[key], self._through[partition]),
            )
            for key in changed
            for partition, hour, role in (key,)
        ]
        if changed:
            self._advance(max(hour for _, hour, _ in changed))
        return records

    def apply(self, value: bytes | None) -> None:
        """A record read from the pulse topic (another worker's count, or our own echo).

        Counts only grow, so the larger of the known and the read count is kept: an echo of
        an older count does not undo newer counting.
        """
        try:
            doc = orjson.loads(value or b"")
            role, hour = str(doc["role"]), int(doc["hour"])
            partition, count, through = (
                int(doc["partition"]),
                int(doc["count"]),
                int(doc["through"]),
            )
            if len(role) > _MAX_ROLE_BYTES or count < 0:
                raise ValueError("out of range")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.unreadable += 1
            return
        if through > self._through.get(partition, -1):
            self._through[partition] = through
        if role not in self.usual or hour < self._newest_hour - KEEP_HOURS:
            return
        key = (partition, hour, role)
        known = self._counts.get(key, 0)
        if count > known:
            self._counts[key] = count
            self.totals.add(role, hour, float(count - known))
            self._advance(hour)

    def set_pulses(self, events: Iterable[AccessEvent]) -> None:
        """Give each event its pulse from the counts (as offline)."""
        set_pulses(events, self.totals, self.usual)

    def _advance(self, hour: int) -> None:
        """Note the newest hour counted; once a day of event time, forget hours older than
        :data:`KEEP_HOURS` before it (no event that can still arrive in time reads them)."""
        if hour <= self._newest_hour:
            return
        self._newest_hour = hour
        first_kept = hour - KEEP_HOURS
        if first_kept >= self._forgotten_before + 24:
            self.totals.forget_before(first_kept)
            for key in [k for k in self._counts if k[1] < first_kept]:
                del self._counts[key]
            self._forgotten_before = first_kept
