"""A run over a directory that an earlier run filled warns where the versions that made what it keeps
(scalecode, a backend's plugin, the libraries that compute codes) have changed since."""

from __future__ import annotations

import json

from scalecode import __version__
from scalecode.manifest import version_changes, versions_of
from scalecode.runner import Runner
from tests.test_ranking_run import load, workdir

__all__ = ["workdir"]  # the fixture, shared with the ranking tests


def test_versions_that_changed_are_listed_and_the_rest_are_not(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "scalecode": "0.1.0",
                "libraries": {"torch": "2.1.0", "numpy": "1.0", "transformers": "4.50.0"},
                "backends": {"minilm": {"plugin_package": "scalecode-hf", "plugin_version": "0.1.0"}},
            }
        )
    )
    now = {
        "scalecode": "0.2.0",
        "torch": "2.1.0",
        "transformers": "4.57.0",
        "scalecode-hf (backend minilm)": "0.1.0",
        "scalecode-hf (backend other)": "0.3.0",  # new since: nothing of it is kept
    }
    assert version_changes(manifest, now) == ["scalecode 0.1.0 -> 0.2.0", "transformers 4.50.0 -> 4.57.0"]
    assert "numpy" not in versions_of(json.loads(manifest.read_text()))  # scores are made afresh each run


def test_no_earlier_manifest_or_an_unreadable_one_gives_no_warning(tmp_path):
    assert version_changes(tmp_path / "manifest.json", {"scalecode": "1"}) == []
    (tmp_path / "manifest.json").write_text("[1, 2")
    assert version_changes(tmp_path / "manifest.json", {"scalecode": "1"}) == []
    (tmp_path / "manifest.json").write_text("[1, 2]")
    assert version_changes(tmp_path / "manifest.json", {"scalecode": "1"}) == []


def test_a_run_over_a_directory_made_by_another_plugin_version_warns(workdir, plugins):
    job = load(workdir, plugins)
    out = workdir / "out"
    out.mkdir()
    backend = job.backends[0]
    recorded = {
        "scalecode": __version__,
        "backends": {
            backend.name: {"plugin_package": backend.info.plugin.name, "plugin_version": "0.0.1-old"}
        },
    }
    (out / "manifest.json").write_text(json.dumps(recorded))
    echoed: list[str] = []
    Runner(job, plugins, out=out, echo=echoed.append, progress=False)._warn_of_upgrades()
    (warning,) = echoed
    assert warning.startswith("warning: versions changed since this directory's last run: ")
    assert (
        f"{backend.info.plugin.name} (backend {backend.name}) 0.0.1-old -> {backend.info.plugin.version}"
        in warning
    )

    recorded["backends"][backend.name]["plugin_version"] = backend.info.plugin.version
    (out / "manifest.json").write_text(json.dumps(recorded))
    echoed.clear()
    Runner(job, plugins, out=out, echo=echoed.append, progress=False)._warn_of_upgrades()
    assert echoed == []
