"""OCSF Detection Finding output, validated with the maintained py-ocsf-models package."""

from __future__ import annotations

from py_ocsf_models.events.findings.detection_finding import DetectionFinding

from insiderwatch.models.artifact import load_model
from insiderwatch.models.detector import Detector
from insiderwatch.stream.formats import format_alert
from tests.helpers import export_burst


def _burst_alerts(small_model):
    detector = Detector(load_model(small_model))
    events = export_burst(200, growing=True)
    return detector.process(events, {}, "2026-01-20T03:05:00Z").alerts


def test_alerts_render_as_valid_ocsf_detection_findings(small_model):
    alerts = _burst_alerts(small_model)
    assert alerts
    for alert in alerts:
        finding = format_alert(alert, "ocsf")
        model = DetectionFinding.model_validate(finding)
        assert model.class_uid == 2004 and model.category_uid == 2
        assert model.finding_info.uid == alert["alert_id"]
        assert int(model.type_uid) == (200401 if alert["status"] == "new" else 200402)
        assert model.severity_id.value in (2, 3, 4, 5)
        assert 0 <= model.risk_score <= 100
        assert (
            model.evidences
            and model.evidences[0].data["observed"] == alert["reasons"][0]["observed"]
        )
        assert finding["anomaly_analyses"][0]["baselines"]


def test_incident_update_is_an_update_of_the_same_finding(small_model):
    alerts = _burst_alerts(small_model)
    new = [a for a in alerts if a["status"] == "new"]
    updates = [a for a in alerts if a["status"] == "updated"]
    assert new and updates
    created = format_alert(new[0], "ocsf")
    updated = format_alert(next(u for u in updates if u["alert_id"] == new[0]["alert_id"]), "ocsf")
    assert created["type_uid"] == 200401 and updated["type_uid"] == 200402
    assert created["finding_info"]["uid"] == updated["finding_info"]["uid"]


def test_native_alerts_match_the_shipped_json_schema(small_model):
    import json
    from importlib import resources

    import jsonschema

    schema = json.loads(resources.files("stream").joinpath("alert.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    alerts = _burst_alerts(small_model)
    assert alerts
    for alert in alerts:
        validator.validate(alert)
    broken = dict(alerts[0], severity="apocalyptic")
    assert not validator.is_valid(broken)
