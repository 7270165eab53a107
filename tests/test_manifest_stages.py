"""manifest.json is written as the run goes, not only at its end: a run stopped part way (a kill, a
budget, an error) still records what produced what it left, and says that it stopped and why."""

from __future__ import annotations

import json

import pytest

from scalecode.config import load_job
from scalecode.plugins import load_plugins
from scalecode.runner import Runner

from .conftest import write_sample_gold

JOB = """\
task: {type: classification, labels: [positive, negative, neutral]}
data: {gold: {path: gold.csv}}
backends:
  - {name: learned, plugin: learned-dictionary, params: {min_df: 1, cv: 3}}
evaluation:
  test_size: 0.3
  bootstrap: {n: 20}
  learning_curve: {sizes: [0.5], repeats: 1}
output: {dir: run}
"""


@pytest.fixture
def job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_sample_gold(tmp_path / "gold.csv")
    (tmp_path / "job.yaml").write_text(JOB)
    plugins = load_plugins(allow=["scalecode-dictionary"])
    return load_job(tmp_path / "job.yaml", plugins), plugins


def read_manifest(tmp_path):
    return json.loads((tmp_path / "run" / "manifest.json").read_text())


def test_a_run_stopped_in_its_learning_curves_leaves_a_manifest_that_says_so(
    job, tmp_path, ray_local, monkeypatch
):
    job, plugins = job

    def full_disk(self, train, test):
        raise OSError("No space left on device: 'run/curves' (token sk-proj-4f9Qz8xK2mN7vB3cR1tY6w)")

    with monkeypatch.context() as patch:
        patch.setattr(Runner, "_learning_curves", full_disk)
        with pytest.raises(OSError):
            Runner(job, plugins, out=tmp_path / "run", echo=lambda line: None, progress=False).run()
    stopped = read_manifest(tmp_path)
    assert "finished" not in stopped
    assert stopped["stopped"]["reason"].startswith("OSError: No space left on device")
    assert "sk-proj-4f9Qz8xK2mN7vB3cR1tY6w" not in json.dumps(stopped)  # a secret in an error stays out
    # What the run did before it stopped is recorded: the trained backend, its data, its timings.
    assert stopped["backends"]["learned"]["trained"] is True
    assert stopped["data"]["gold"]["documents"] == 60
    assert {"read_data", "start_ray", "evaluate"} <= set(stopped["timings"])

    # The run resumed over the same directory finishes, and its manifest no longer says it stopped.
    Runner(job, plugins, out=tmp_path / "run", echo=lambda line: None, progress=False).run()
    finished = read_manifest(tmp_path)
    assert "stopped" not in finished and finished["finished"] >= finished["started"]
    assert "learning_curves" in finished["timings"]


def test_a_run_interrupted_by_the_user_says_it_was_interrupted(job, tmp_path, ray_local, monkeypatch):
    job, plugins = job

    def ctrl_c(self, train, test):
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, "_learning_curves", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        Runner(job, plugins, out=tmp_path / "run", echo=lambda line: None, progress=False).run()
    assert read_manifest(tmp_path)["stopped"]["reason"] == "KeyboardInterrupt"


def test_a_run_refused_its_directory_leaves_the_running_runs_manifest_alone(job, tmp_path):
    """A second run on a directory another run holds is refused before it writes anything there."""
    job, plugins = job
    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text('{"started": "earlier"}\n')
    from scalecode.runner import _lock

    held = _lock(out)
    try:
        with pytest.raises(Exception, match="run"):
            Runner(job, plugins, out=out, echo=lambda line: None, progress=False).run()
    finally:
        held.close()
    assert json.loads((out / "manifest.json").read_text()) == {"started": "earlier"}


def test_an_upgrade_is_warned_of_until_a_run_over_it_finishes(job, tmp_path, ray_local, monkeypatch):
    """A run stopped part way does not replace the record of the versions that made what the
    directory keeps: the next run warns again."""
    job, plugins = job
    out = tmp_path / "run"
    out.mkdir()
    old = {"scalecode": "0.0.1-old", "backends": {}, "libraries": {}, "finished": "earlier"}
    (out / "manifest.json").write_text(json.dumps(old))

    def run() -> list[str]:
        said: list[str] = []
        Runner(job, plugins, out=out, echo=said.append, progress=False).run()
        return [line for line in said if "versions changed" in line]

    def stop(self, train, test):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Runner, "_learning_curves", stop)
        with pytest.raises(KeyboardInterrupt):
            run()
    assert read_manifest(tmp_path)["made_with"]["scalecode"] == "0.0.1-old"
    [warning] = run()  # the stopped run made little: the directory still holds 0.0.1-old's results
    assert "scalecode 0.0.1-old ->" in warning
    finished = read_manifest(tmp_path)
    assert finished["made_with"]["scalecode"] == finished["scalecode"]
    assert "scalecode-dictionary (backend learned)" in finished["made_with"]
    assert run() == []


def test_a_runner_run_again_and_refused_leaves_the_other_runs_manifest(job, tmp_path, monkeypatch):
    """``run()`` called again on a Runner whose first call stopped, while another run holds the
    directory: refused, and the holder's manifest is left as it is."""
    job, plugins = job
    out = tmp_path / "run"
    runner = Runner(job, plugins, out=out, echo=lambda line: None, progress=False)

    def no_ray(num_cpus=None):
        raise RuntimeError("Ray did not start")

    monkeypatch.setattr("scalecode.runner.start_ray", no_ray)
    with pytest.raises(RuntimeError):
        runner.run()
    (out / "manifest.json").write_text('{"started": "the other run"}\n')
    from scalecode.runner import _lock

    held = _lock(out)
    try:
        with pytest.raises(Exception, match="in use"):
            runner.run()
    finally:
        held.close()
    assert json.loads((out / "manifest.json").read_text()) == {"started": "the other run"}
