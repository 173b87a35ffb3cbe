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
