"""What a run directory records so that anyone can tell exactly what produced it.

The manifest holds the job as written (secrets stay ``{"$env": NAME}`` references, never values),
versions of Python, scalecode, its plugins and the libraries that shape results, hashes of every data
and lexicon file, seeds, the split, timings and per-backend details.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from scalecode.data import data_files
from scalecode.plugins import Plugins
from scalecode.readers import Reader

LIBRARIES = (
    "ray",
    "polars",
    "pyarrow",
    "numpy",
    "scipy",
    "scikit-learn",
    "pydantic",
    "pluggy",
    "krippendorff",
    "numba",
    "torch",
    "transformers",
    "peft",
    "deepspeed",
    "openai",
)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# Of those, the ones that compute the codes themselves (the rest shape scores, which every run
# computes afresh from what is kept, or only the record).
CODING_LIBRARIES = ("torch", "transformers", "peft")


def versions_of(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The versions that shape the codes a run keeps, as a manifest records them: scalecode's, each
    backend's plugin's, and those of the libraries that compute codes."""
    versions: dict[str, Any] = {"scalecode": manifest.get("scalecode")}
    for name, backend in (manifest.get("backends") or {}).items():
        if isinstance(backend, Mapping) and backend.get("plugin_package"):
            versions[f"{backend['plugin_package']} (backend {name})"] = backend.get("plugin_version")
    libraries = manifest.get("libraries") or {}
    versions.update({name: libraries[name] for name in CODING_LIBRARIES if name in libraries})
    return {what: str(version) for what, version in versions.items() if version is not None}


def made_with(previous_manifest: Path) -> dict[str, str] | None:
    """The versions that made what a run directory keeps, as its manifest records them: ``made_with``
    (a run that stopped part way keeps the record of the one before it), else, in a manifest of an
    earlier scalecode, the versions of the run that wrote it. None where there is no manifest, or it
    cannot be read."""
    try:
        manifest = json.loads(previous_manifest.read_text(encoding="utf-8"))
        recorded = manifest.get("made_with")
        if isinstance(recorded, Mapping):
            return {str(what): str(version) for what, version in recorded.items()}
        return versions_of(manifest)
    except (OSError, ValueError, AttributeError):
        return None


def version_changes(previous_manifest: Path, now: Mapping[str, str]) -> list[str]:
    """``what before -> now`` for each version ``now`` holds that differs from the one that made what
    the run which wrote ``previous_manifest`` kept (``made_with``); none where there is no such file,
    or it cannot be read."""
    before = made_with(previous_manifest)
    if before is None:
        return []
    return [
        f"{what} {before[what]} -> {now[what]}"
        for what in sorted(before.keys() & now.keys())
        if before[what] != now[what]
    ]


def host() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "hostname_sha256": hashlib.sha256(platform.node().encode()).hexdigest()[:16],
    }


def plugin_records(plugins: Plugins) -> dict[str, Any]:
    return {
        "loaded": [
            {"name": info.name, "version": info.version, "source": info.source}
            for info in plugins.infos.values()
        ],
        "failures": [str(f) for f in plugins.failures],
    }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def table_hashes(path: str | Path, readers: Sequence[Reader], fmt: str | None = None) -> dict[str, str]:
    """sha256 of every file behind a table."""
    return {str(file): file_sha256(file) for file in data_files(path, readers, fmt)}


def nan_to_null(data: Any) -> Any:
    """``data`` with every NaN and infinity, in dicts, lists and tuples at any depth, made None.

    json.dumps writes them as bare NaN and Infinity, which strict JSON parsers (JavaScript's, jq,
    most languages' standard ones) refuse; an undefined figure reads as null there.
    """
    if isinstance(data, numbers.Real) and not isinstance(data, numbers.Integral):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: nan_to_null(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [nan_to_null(value) for value in data]
    return data


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON (NaN and infinity as null) atomically: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    text = json.dumps(nan_to_null(data), indent=2, default=str, allow_nan=False)
    partial.write_text(text + "\n", encoding="utf-8")
    os.replace(partial, path)
