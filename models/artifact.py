"""Model artifact I/O: plain arrays (``model.npz``) plus ``manifest.json`` with checksums.

Nothing is ever unpickled: the arrays load with ``allow_pickle=False`` and the manifest is
JSON. Both files are verified by sha256 before use; a mismatch is refused with
:class:`ArtifactError`, whose message is one sentence fit for an operator.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insiderwatch.models.features import FEATURE_NAMES, FEATURE_VERSION
from insiderwatch.models.forest import ForestArrays
from insiderwatch.models.manifest import Manifest, ManifestError
from insiderwatch.models.peers import PeerBaseline

__all__ = [
    "ArtifactError",
    "Model",
    "save_model",
    "load_model",
    "loads_cleanly",
    "peek_version",
    "FORMAT_VERSION",
]

FORMAT_VERSION = 1
ARRAYS_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"


class ArtifactError(Exception):
    """A model directory that cannot be used; the message says why in one sentence."""


@dataclass(frozen=True)
class Model:
    """A loaded, verified model: the forest, the peer baseline and the manifest."""

    forest: ForestArrays
    peers: PeerBaseline
    manifest: Manifest
    attribution_baseline: np.ndarray

    @property
    def version(self) -> str:
        return self.manifest.model_version

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest.feature_names)


def _canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def save_model(
    model_dir: str | Path,
    forest: ForestArrays,
    attribution_baseline: np.ndarray,
    manifest: Manifest,
    peers: PeerBaseline,
) -> Manifest:
    """Write ``model.npz`` and ``manifest.json`` into ``model_dir``; return the manifest."""
    directory = Path(model_dir)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    arrays = forest.as_dict()
    arrays["attribution_baseline"] = np.asarray(attribution_baseline, dtype=np.float64)
    np.savez(buffer, **arrays)
    array_bytes = buffer.getvalue()
    body = manifest.to_json()
    body["format_version"] = FORMAT_VERSION
    body["peers"] = peers.to_json()
    body["arrays_file"] = ARRAYS_FILE
    body["arrays_sha256"] = hashlib.sha256(array_bytes).hexdigest()
    body.pop("manifest_sha256", None)
    body["manifest_sha256"] = hashlib.sha256(_canonical(body)).hexdigest()
    _atomic_write(directory / ARRAYS_FILE, array_bytes)
    _atomic_write(directory / MANIFEST_FILE, json.dumps(body, indent=2, sort_keys=True).encode())
    return manifest


def load_model(model_dir: str | Path) -> Model:
    """Load and verify a model directory. Raises :class:`ArtifactError` on any problem."""
    directory = Path(model_dir)
    manifest_path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise ArtifactError(
            f"model directory {directory} does not exist; run 'insiderwatch train' first"
        )
    if not manifest_path.is_file():
        raise ArtifactError(
            f"{manifest_path} is missing; this is not an insiderwatch model directory"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{manifest_path} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{manifest_path} is not a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path} has format version {manifest.get('format_version')!r}; "
            f"this insiderwatch reads version {FORMAT_VERSION}"
        )
    if (
        manifest.get("feature_names") != list(FEATURE_NAMES)
        or manifest.get("feature_version") != FEATURE_VERSION
    ):
        raise ArtifactError(
            f"{manifest_path} was trained on another feature set (version "
            f"{manifest.get('feature_version')!r}, this insiderwatch computes version "
            f"{FEATURE_VERSION}); retrain it with 'insiderwatch train'"
        )
    claimed = manifest.get("manifest_sha256")
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    if claimed != hashlib.sha256(_canonical(body)).hexdigest():
        raise ArtifactError(f"{manifest_path} fails its sha256 check; refusing a tampered manifest")
    arrays_path = directory / str(manifest.get("arrays_file", ARRAYS_FILE))
    try:
        array_bytes = arrays_path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {arrays_path} ({exc.strerror})") from None
    if hashlib.sha256(array_bytes).hexdigest() != manifest.get("arrays_sha256"):
        raise ArtifactError(f"{arrays_path} fails its sha256 check; refusing a tampered model")
    try:
        with np.load(io.BytesIO(array_bytes), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        forest = ForestArrays.from_dict(arrays)
        peers = PeerBaseline.from_json(manifest["peers"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{arrays_path} is not a valid insiderwatch model ({exc})") from None
    try:
        typed = Manifest.from_json(manifest)
    except ManifestError as exc:
        raise ArtifactError(f"{manifest_path}: {exc}") from None
    return Model(
        forest=forest,
        peers=peers,
        manifest=typed,
        attribution_baseline=arrays["attribution_baseline"],
    )


def peek_version(model_dir: str | Path) -> str | None:
    """The model version ``manifest.json`` names, unverified (None when unreadable): a cheap
    check for a new model before :func:`load_model` verifies it."""
    try:
        version = json.loads((Path(model_dir) / MANIFEST_FILE).read_text()).get("model_version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


def loads_cleanly(model_dir: str | Path) -> bool:
    """Whether ``model_dir`` holds a model this code can serve (for tools that cache one and
    must retrain it after an upgrade changed the feature set)."""
    try:
        load_model(model_dir)
    except ArtifactError:
        return False
    return True


PREVIOUS_DIR = "previous"


def publish_model(source_dir: str | Path, live_dir: str | Path) -> tuple[str, str | None]:
    """Verify ``source_dir`` and make it the live model in ``live_dir``.

    The live model's files are kept in ``live_dir/previous`` first, so :func:`rollback_model`
    can restore them in one step. Arrays are written before the manifest, so a worker that
    reads in between sees a checksum mismatch and simply retries later. Returns
    ``(new_version, previous_version)``.
    """
    new = load_model(source_dir)
    live = Path(live_dir)
    live.mkdir(parents=True, exist_ok=True)
    previous_version = None
    if (live / MANIFEST_FILE).is_file():
        previous_version = load_model(live).version
        keep = live / PREVIOUS_DIR
        keep.mkdir(exist_ok=True)
        for name in (ARRAYS_FILE, MANIFEST_FILE):
            _atomic_write(keep / name, (live / name).read_bytes())
    source = Path(source_dir)
    for name in (ARRAYS_FILE, MANIFEST_FILE):
        _atomic_write(live / name, (source / name).read_bytes())
    return new.version, previous_version


def rollback_model(live_dir: str | Path) -> tuple[str, str]:
    """Swap the live model with the one kept by the last :func:`publish_model`."""
    live = Path(live_dir)
    keep = live / PREVIOUS_DIR
    if not (keep / MANIFEST_FILE).is_file():
        raise ArtifactError(f"{live} has no previous model to roll back to")
    previous = load_model(keep)
    current = load_model(live)
    staged = {name: (live / name).read_bytes() for name in (ARRAYS_FILE, MANIFEST_FILE)}
    for name in (ARRAYS_FILE, MANIFEST_FILE):
        _atomic_write(live / name, (keep / name).read_bytes())
    for name, data in staged.items():
        _atomic_write(keep / name, data)
    return previous.version, current.version
