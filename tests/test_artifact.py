"""Model artifacts: round trip, no pickle, checksum refusal."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from insiderwatch.models.artifact import ArtifactError, load_model


def test_round_trip_loads_verified_arrays(small_model):
    model = load_model(small_model)
    assert model.version and 0 < model.threshold < 1
    assert len(model.feature_names) == model.forest.n_features
    assert model.manifest.training_window.start < model.manifest.training_window.end
    assert model.manifest.event_count > 1000


def test_tampered_arrays_are_refused(small_model, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(small_model, copy)
    data = bytearray((copy / "model.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.npz").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_model(copy)


def test_tampered_manifest_is_refused(small_model, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(small_model, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["threshold"] = 0.99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="tampered manifest"):
        load_model(copy)


def test_pickled_arrays_are_never_loaded(small_model, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(small_model, copy)
    np.savez(copy / "model.npz", left=np.array([object()], dtype=object))
    with pytest.raises(ArtifactError):
        load_model(copy)


def test_missing_or_wrong_version_directory(tmp_path, small_model):
    with pytest.raises(ArtifactError, match="does not exist"):
        load_model(tmp_path / "nope")
    copy = tmp_path / "m"
    shutil.copytree(small_model, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format version"):
        load_model(copy)


def test_publish_then_rollback_in_one_command(small_model, tmp_path):
    from insiderwatch.models.artifact import publish_model, rollback_model

    live = tmp_path / "live"
    first_version, previous = publish_model(small_model, live)
    assert previous is None and load_model(live).version == first_version
    other = tmp_path / "other"
    shutil.copytree(small_model, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["model_version"] = "v-next"
    import hashlib

    from insiderwatch.models.artifact import (
        _canonical,  # re-sign the edited manifest like training does
    )

    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    manifest["manifest_sha256"] = hashlib.sha256(_canonical(body)).hexdigest()
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert publish_model(other, live) == ("v-next", first_version)
    assert load_model(live).version == "v-next"
    assert rollback_model(live) == (first_version, "v-next")
    assert load_model(live).version == first_version


def test_model_trained_on_other_features_is_refused(small_model, tmp_path):
    """A model whose feature set differs from this code's would score garbage silently."""
    from insiderwatch.models.artifact import save_model

    model = load_model(small_model)
    manifest = dataclasses.replace(
        model.manifest, feature_version=model.manifest.feature_version - 1
    )
    save_model(tmp_path / "old", model.forest, model.attribution_baseline, manifest, model.peers)
    with pytest.raises(ArtifactError, match="another feature set.*retrain"):
        load_model(tmp_path / "old")


def test_loads_cleanly_tells_tools_when_to_retrain(small_model, tmp_path):
    from insiderwatch.models.artifact import loads_cleanly

    assert loads_cleanly(small_model)
    assert not loads_cleanly(tmp_path / "missing")
    copy = tmp_path / "m"
    shutil.copytree(small_model, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["feature_version"] = -1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert not loads_cleanly(copy)
