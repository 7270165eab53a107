"""A run directory is resumed by any job that says the same thing, however it is spelled.

Its identity is the settings its results come from: ``train: true`` and ``train: {}``, an option
left out and the same option at its default, ``data/x.csv`` and ``./data/x.csv`` all say the same
and share it. Another epoch count, model, data file or split does not.
"""

from __future__ import annotations

import copy
import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from scalecode.config import Job, load_job
from scalecode.errors import ScalecodeError
from scalecode.plugins import Plugins, load_plugins
from scalecode.runner import _claim, run_identity

TUNED = textwrap.dedent('''
    from scalecode import Backend, BackendParams, Predictions, TaskType, hookimpl, operational

    class TunedParams(BackendParams):
        model: str = "small"
        temperature: float = 0.0
        concurrency: int = operational(4)

    class TunedTrainParams(BackendParams):
        epochs: int = 3
        learning_rate: float = 0.001
        workers: int = operational(1)

    class Tuned(Backend):
        """A trainable coder with options and training options: what the identity normalises."""
        name = "tuned"
        task_types = frozenset({TaskType.CLASSIFICATION})
        trainable = True
        Params = TunedParams
        TrainParams = TunedTrainParams

        def predict_batch(self, texts):
            return Predictions(label=["pos"] * len(texts))

        def fit(self, train, eval, config):
            raise NotImplementedError("never trained here: only the identity is checked")

    @hookimpl
    def register_backends(register):
        register(Tuned, aliases=["tuned-alias"])
''')

BASE: dict[str, Any] = {
    "task": {"type": "classification", "labels": ["pos", "neg"]},
    "data": {"gold": {"path": "data/gold.csv"}, "corpus": {"path": "corpus"}},
    "backends": [{"name": "coder", "plugin": "tuned", "train": True}],
    "output": {"dir": "out"},
}
OMIT = object()  # an edit that removes the key


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Plugins:
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "tuned.py").write_text(TUNED)
    return load_plugins(folder, allow=["tuned"], entry_points=False)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Job paths are relative to where scalecode runs: here, with two gold files and a corpus."""
    monkeypatch.chdir(tmp_path)
    gold = "id,text,label\n1,a good day,pos\n2,a bad day,neg\n"
    (tmp_path / "data" / "sub").mkdir(parents=True)
    for name in ("data/gold.csv", "data/other.csv", "data/sub/gold.csv"):
        (tmp_path / name).write_text(gold)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "part.csv").write_text("id,text\n1,another day\n")
    return tmp_path


def edited(job: dict[str, Any], **edits: Any) -> dict[str, Any]:
    """A copy of ``job`` with each dotted key ("backends.0.train") set, or removed for OMIT."""
    job = copy.deepcopy(job)
    for dotted, value in edits.items():
        *parents, last = dotted.split(".")
        node: Any = job
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is OMIT:
            node.pop(last, None)
        else:
            node[last] = value
    return job


def load(workdir: Path, job: dict[str, Any], plugins: Plugins) -> Job:
    path = workdir / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return load_job(path, plugins)


def claim(workdir: Path, job: dict[str, Any], plugins: Plugins) -> Job:
    loaded = load(workdir, job, plugins)
    out = workdir / "out"
    out.mkdir(exist_ok=True)
    _claim(out, loaded, run_identity(loaded, "gold-hash", {}))
    return loaded


def identity(workdir: Path, job: dict[str, Any], plugins: Plugins) -> str:
    return str(run_identity(load(workdir, job, plugins), "gold-hash", {})["config"])


SAME_JOB = {
    "train: {}": {"backends.0.train": {}},
    "train at its defaults": {"backends.0.train": {"epochs": 3, "learning_rate": 0.001}},
    "train at its defaults, run otherwise": {"backends.0.train": {"epochs": 3, "workers": 2}},
    "train: 3.0 epochs": {"backends.0.train": {"epochs": 3.0}},
    "params at their defaults": {"backends.0.params": {"model": "small", "temperature": 0.0}},
    "params: {}": {"backends.0.params": {}},
    "the plugin by its alias": {"backends.0.plugin": "tuned-alias"},
    "./data/gold.csv": {"data.gold.path": "./data/gold.csv"},
    "data//gold.csv": {"data.gold.path": "data//gold.csv"},
    "data/sub/../gold.csv": {"data.gold.path": "data/sub/../gold.csv"},
    "corpus/": {"data.corpus.path": "./corpus/"},
}


@pytest.mark.parametrize("edits", SAME_JOB.values(), ids=SAME_JOB.keys())
def test_a_job_spelled_otherwise_resumes_the_directory(workdir, plugins, edits):
    claim(workdir, BASE, plugins)
    claim(workdir, edited(BASE, **edits), plugins)  # not refused
    assert identity(workdir, edited(BASE, **edits), plugins) == identity(workdir, BASE, plugins)


def test_equivalent_spellings_agree_in_both_directions(workdir, plugins):
    spelled_out = edited(
        BASE,
        **{
            "backends.0.params": {"model": "small", "temperature": 0, "concurrency": 8},
            "backends.0.train": {"epochs": 3, "learning_rate": 0.001},
            "data.gold.path": "./data/sub/../gold.csv",
        },
    )
    claim(workdir, spelled_out, plugins)
    claim(workdir, BASE, plugins)
    claim(workdir, spelled_out, plugins)


OTHER_JOB = {
    "another epoch count": {"backends.0.train": {"epochs": 4}},
    "another learning rate": {"backends.0.train": {"learning_rate": 0.01}},
    "not trained": {"backends.0.train": False},
    "another model": {"backends.0.params": {"model": "large"}},
    "another temperature": {"backends.0.params": {"temperature": 0.5}},
    "another data file": {"data.gold.path": "data/other.csv"},
    "a file of the same name elsewhere": {"data.gold.path": "data/sub/gold.csv"},
    "another test_size": {"evaluation": {"test_size": 0.4}},
    "another backend name": {"backends.0.name": "coder2"},
}


@pytest.mark.parametrize("edits", OTHER_JOB.values(), ids=OTHER_JOB.keys())
def test_a_different_job_is_still_refused(workdir, plugins, edits):
    claim(workdir, BASE, plugins)
    with pytest.raises(ScalecodeError, match="holds a run made from a different job"):
        claim(workdir, edited(BASE, **edits), plugins)


def test_a_location_behind_a_url_is_hashed_as_written(workdir, plugins):
    """An object store's keys are names, not paths: 'a//b' and 'a/x/../b' name other objects."""
    job = edited(BASE, **{"data.corpus.path": "s3://bucket/corpus/x.csv"})
    seen = {identity(workdir, job, plugins)}
    for other in ("s3://bucket/corpus//x.csv", "s3://bucket/corpus/y/../x.csv", "s3://bucket/./corpus/x.csv"):
        seen.add(identity(workdir, edited(job, **{"data.corpus.path": other}), plugins))
    assert len(seen) == 4


def test_a_secret_from_the_environment_is_hashed_by_its_name(workdir, plugins, monkeypatch):
    """A rotated value is the same job; the identity never depends on (or hashes) a secret."""
    job = edited(BASE, **{"backends.0.params": {"model": {"$env": "TUNED_MODEL"}}})
    monkeypatch.setenv("TUNED_MODEL", "small")
    claim(workdir, job, plugins)
    before = identity(workdir, job, plugins)
    monkeypatch.setenv("TUNED_MODEL", "large")
    claim(workdir, job, plugins)
    assert identity(workdir, job, plugins) == before
    monkeypatch.setenv("OTHER_MODEL", "large")
    with pytest.raises(ScalecodeError, match="holds a run made from a different job"):
        claim(workdir, edited(BASE, **{"backends.0.params": {"model": {"$env": "OTHER_MODEL"}}}), plugins)


def _as_written_hash(job: Job, *, operational: bool) -> str:
    """The identity hash of earlier versions: the options as the job wrote them; ``operational``
    keeps the options that only say how a backend runs, as the versions before those did."""
    config = job.config.model_dump(mode="json")
    backends = config["backends"]
    if not operational:
        for entry, resolved in zip(backends, job.backends, strict=True):
            cls = resolved.info.backend_class
            entry["params"] = cls.Params.result_options(entry["params"])
            if isinstance(entry["train"], dict):
                entry["train"] = cls.TrainParams.result_options(entry["train"])
    made_from = {
        "task": config["task"],
        "data": config["data"],
        "backends": backends,
        "split": {key: config["evaluation"][key] for key in ("test_size", "seed", "stratify")},
    }
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("operational", [False, True], ids=["as written", "with operational options"])
def test_a_directory_claimed_by_an_earlier_version_is_still_accepted(workdir, plugins, operational):
    job = edited(
        BASE,
        **{
            "backends.0.params": {"model": "small", "concurrency": 2},
            "backends.0.train": {"epochs": 3, "workers": 2},
            "data.gold.path": "./data/gold.csv",
        },
    )
    loaded = claim(workdir, job, plugins)
    marker = workdir / "out" / "job.json"
    record = json.loads(marker.read_text())
    record["identity"]["config"] = _as_written_hash(loaded, operational=operational)
    marker.write_text(json.dumps(record))
    claim(workdir, job, plugins)  # the same job file resumes it
    # ... and the directory now records the new identity, which any spelling of the job shares.
    assert json.loads(marker.read_text())["identity"]["config"] == identity(workdir, job, plugins)
    claim(workdir, BASE, plugins)


def test_a_directory_claimed_by_an_earlier_version_refuses_a_different_job(workdir, plugins):
    loaded = claim(workdir, BASE, plugins)
    marker = workdir / "out" / "job.json"
    record = json.loads(marker.read_text())
    record["identity"]["config"] = _as_written_hash(loaded, operational=False)
    marker.write_text(json.dumps(record))
    with pytest.raises(ScalecodeError, match="holds a run made from a different job"):
        claim(workdir, edited(BASE, **{"backends.0.train": {"epochs": 4}}), plugins)
