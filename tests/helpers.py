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
    from models.events import parse_event

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
