"""Small builders for test events."""

from __future__ import annotations

import orjson


def event_dict(i: int = 0, **overrides) -> dict:
    doc = {
        "event_id": f"e{i}",
        "timestamp": "2026-01-05T09:00:00Z",
        "actor_id": "alice",
        "actor_role": "customer_support",
        "action": "view",
        "resource_type": "customer_profile",
        "resource_id": f"cust-{i}",
        "record_count": 1,
        "ticket_id": "T-1",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not ...}


def event_bytes(i: int = 0, **overrides) -> bytes:
    return orjson.dumps(event_dict(i, **overrides))


def export_burst(n: int, growing: bool = False) -> list:
    """``n`` no-ticket exports of customer contacts by 'mallory', one per second from 03:00."""
    from insiderwatch.models.events import parse_event

    return [
        parse_event(
            orjson.dumps(
                {
                    "event_id": f"m{i}",
                    "timestamp": f"2026-01-20T03:{i // 60:02d}:{i % 60:02d}Z",
                    "actor_id": "mallory",
                    "actor_role": "customer_support",
                    "action": "export",
                    "resource_type": "customer_contact",
                    "resource_id": f"c{i}",
                    "record_count": 1000 * (i + 1) if growing else 50000,
                    "fields": ["email"],
                    "ticket_id": None,
                }
            )
        )
        for i in range(n)
    ]


def support_veteran() -> tuple:
    """``(states, peers)`` after 'alice' made 300 ticketed customer-support accesses over 10
    working days from one laptop: nine profile views to one order-history view."""
    from insiderwatch.models.detector import observe
    from insiderwatch.models.events import parse_event
    from insiderwatch.models.peers import GLOBAL_ROLE, PeerBaseline, RoleProfile
    from insiderwatch.models.state import absorb_into_baseline

    def role(pairs: dict[str, float]) -> RoleProfile:
        hours = [0.01] * 9 + [0.1] * 8 + [0.01] * 7
        return RoleProfile(50, pairs, hours, [0.19] * 5 + [0.025] * 2, 30.0, 60.0, 0.1, 5, {})

    peers = PeerBaseline(
        {
            "customer_support": role({"view customer_profile": 0.9, "view order_history": 0.1}),
            "seller_support": role({"view seller_account": 0.9, "update seller_account": 0.1}),
            GLOBAL_ROLE: role({}),
        }
    )
    states: dict = {}
    for i in range(300):
        day, minute = 5 + i // 30, (i % 30) * 10
        timestamp = f"2026-01-{day:02d}T{9 + minute // 60:02d}:{minute % 60:02d}:00Z"
        kind = "order_history" if i % 10 == 9 else "customer_profile"
        e = parse_event(
            event_bytes(i, timestamp=timestamp, resource_type=kind, device_id="laptop-1")
        )
        state, _, _, _ = observe(e, states, peers)
        absorb_into_baseline(state, e)
    return states, peers


class DictStore:
    """The actor-state table as a dict (the processor's ``StateStore``), for tests."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    async def put_many(self, records: list[tuple[bytes, bytes, int]]) -> None:
        for key, value, _ in records:
            self.data[key] = value
