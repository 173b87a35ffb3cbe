"""Alert output formats: the native JSON alert, or an OCSF Detection Finding."""

from __future__ import annotations

__all__ = ["format_alert", "FORMATS"]

FORMATS = ("native", "ocsf")


def format_alert(alert: dict, alert_format: str) -> dict:
    """Render a native alert in ``alert_format``."""
    if alert_format == "native":
        return alert
    if alert_format == "ocsf":
        from insiderwatch.stream.ocsf import to_detection_finding

        return to_detection_finding(alert)
    raise ValueError(f"unknown alert format {alert_format!r}")
