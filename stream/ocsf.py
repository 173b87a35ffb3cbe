"""OCSF Detection Finding (class_uid 2004) rendering of a native insiderwatch alert.

A new incident is an OCSF *Create* (type_uid 200401); a later message about the same
incident is an *Update* (200402) of the same ``finding_info.uid`` (the alert id), so a SIEM
keeps one finding per incident. Observed-vs-expected values go to ``evidences`` and
``anomaly_analyses``; the native alert's extra fields stay under ``unmapped``.

An entity-risk alert (``kind: "entity_risk"``) is a finding of its own type ("Entity risk"):
its evidence timeline (the strongest contributing accesses of the last week) follows the
reasons in ``evidences``, and the risk figures are under ``unmapped.risk``.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["to_detection_finding", "OCSF_VERSION"]

OCSF_VERSION = "1.5.0"
_SEVERITY_ID = {"low": 2, "medium": 3, "high": 4, "critical": 5}
_RISK_LEVEL_ID = {"low": 1, "medium": 2, "high": 3, "critical": 4}


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def to_detection_finding(alert: dict) -> dict:
    """Map a native alert (see README, "Alert") to an OCSF Detection Finding dict."""
    created = alert["status"] == "new"
    activity_id = 1 if created else 2
    severity = alert["severity"]
    confidence = float(alert.get("confidence", 1.0))
    event = alert.get("event") or {}
    reasons = alert.get("reasons") or []
    return {
        "activity_id": activity_id,
        "activity_name": "Create" if created else "Update",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 200400 + activity_id,
        "type_name": f"Detection Finding: {'Create' if created else 'Update'}",
        "severity_id": _SEVERITY_ID[severity],
        "severity": severity.capitalize(),
        "status_id": 1,
        "status": "New",
        "time": _ms(alert["timestamp"]),
        "start_time": _ms(alert["first_seen"]),
        "end_time": _ms(alert["last_seen"]),
        "count": alert.get("event_count"),
        "message": alert["summary"],
        "risk_score": round(float(alert["score"]) * 100),
        "risk_level_id": _RISK_LEVEL_ID[severity],
        "risk_level": severity.capitalize(),
        "confidence_score": round(confidence * 100),
        "confidence_id": 1 if alert.get("warming_up") else (3 if confidence >= 0.75 else 2),
        "finding_info": _finding_info(alert),
        "evidences": _evidences(reasons) + _risk_evidences(alert.get("evidence") or []),
        "anomaly_analyses": _anomaly_analyses(alert, reasons),
        "actor": {
            "user": {
                "uid": alert["actor_id"],
                "name": alert["actor_id"],
                "type": alert["actor_role"],
            }
        },
        "resources": [
            {
                "type": event.get("resource_type"),
                "uid": event.get("resource_id"),
                "data": {"action": event.get("action"), "record_count": event.get("record_count")},
            }
        ],
        "metadata": _metadata(alert),
        "unmapped": {
            "actor_id": alert["actor_id"],
            "actor_role": alert["actor_role"],
            "timestamp": alert["timestamp"],
            "score": alert["score"],
            "threshold": alert["threshold"],
            "trigger": alert.get("trigger"),
            "warming_up": alert.get("warming_up"),
            "event_id": alert["event_id"],
            "kind": alert.get("kind", "event"),
            "risk": alert.get("risk"),
        },
    }


def _finding_info(alert: dict) -> dict:
    entity_risk = alert.get("kind") == "entity_risk"
    what = "Accumulated risk of" if entity_risk else "Unusual data access by"
    return {
        "uid": alert["alert_id"],
        "title": f"{what} {alert['actor_id']} ({alert['actor_role']})",
        "desc": alert["summary"],
        "types": ["Insider data-access anomaly", *(["Entity risk"] if entity_risk else [])],
        "first_seen_time": _ms(alert["first_seen"]),
        "last_seen_time": _ms(alert["last_seen"]),
        "created_time": _ms(alert["first_seen"]),
        "modified_time": _ms(alert["detected_at"]),
        "related_events": [{"uid": uid, "type": "access"} for uid in alert.get("event_ids", [])],
        "analytic": {
            "name": "insiderwatch isolation forest",
            "type_id": 99,
            "type": "Other",
            "uid": alert["model_version"],
            "version": alert["model_version"],
        },
    }


def _evidences(reasons: list) -> list:
    return [
        {
            "name": r["feature"],
            "data": {k: r[k] for k in ("observed", "expected", "contribution", "text")},
        }
        for r in reasons
    ]


def _risk_evidences(timeline: list) -> list:
    return [
        {"name": "risk_evidence", "data": {k: item[k] for k in ("timestamp", "access", "score")}}
        for item in timeline
    ]


def _anomaly_analyses(alert: dict, reasons: list) -> list:
    return [
        {
            "analysis_targets": [{"name": alert["actor_id"], "type": "User"}],
            "anomalies": [
                {
                    "observation_parameter": r["feature"],
                    "observations": [{"value": str(r["observed"])}],
                }
                for r in reasons
            ],
            "baselines": [
                {
                    "observation_parameter": r["feature"],
                    "observations": [{"value": str(r["expected"])}],
                }
                for r in reasons
            ],
        }
    ]


def _metadata(alert: dict) -> dict:
    return {
        "version": OCSF_VERSION,
        "uid": f"{alert['alert_id']}:{alert.get('event_count', 1)}",
        "correlation_uid": alert["alert_id"],
        "product": {
            "name": "insiderwatch",
            "vendor_name": "insiderwatch",
            "version": alert["model_version"],
        },
        "log_name": "insiderwatch-alerts",
        "log_provider": "insiderwatch",
    }
