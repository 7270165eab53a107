"""`scalecode run` end to end on real data in a fresh process, as a user runs it; then resume and score."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import polars as pl
import pytest

from .conftest import scalecode


@pytest.fixture(scope="module")
def project(data_dir, tmp_path_factory) -> Path:
    """A small real sample: 900 NYT sentences with ratings as gold, 3,000 SOTU sentences as corpus."""
    root = tmp_path_factory.mktemp("project")
    nyt = pl.read_parquet(data_dir / "nyt-editorials.parquet")
    nyt.filter(pl.col("group").cast(pl.Int64) <= 160).write_parquet(root / "gold.parquet")
    corpus = pl.read_parquet(data_dir / "sotu-sentences.parquet").sample(3000, seed=1)
    (root / "corpus").mkdir()
    corpus.head(1800).write_parquet(root / "corpus" / "part-1.parquet")
    corpus.tail(1200).write_parquet(root / "corpus" / "part-2.parquet")
    shutil.copy(data_dir / "lexicons" / "vader_lexicon.txt", root)
    (root / "job.yaml").write_text(
        textwrap.dedent("""
        task:
          name: nyt-sample
          type: regression
          scale: {min: -4, max: 4}
        data:
          gold: {path: gold.parquet, label_column: score, group_column: group}
          corpus: {path: corpus}
        backends:
          - name: vader
            plugin: lexicon
            params: {lexicon: vader_lexicon.txt, negation: {window: 3}}
          - name: vader-calibrated
            plugin: lexicon
            params: {lexicon: vader_lexicon.txt, negation: {window: 3}}
            train: true
          - name: learned
            plugin: learned-dictionary
            params: {min_df: 2}
        evaluation: {test_size: 0.3, seed: 7, bootstrap: {n: 300}}
        output: {dir: run}
    """)
    )
    return root


@pytest.fixture(scope="module")
def first_run(project) -> subprocess.CompletedProcess[str]:
    return scalecode("run", "job.yaml", "--num-cpus", "2", "--no-progress", cwd=project)


@pytest.mark.slow
def test_run_end_to_end(project, first_run):
    assert first_run.returncode == 0, first_run.stderr[-3000:]
    run = project / "run"
    out = first_run.stdout
    for name in ("vader", "vader-calibrated", "learned"):
        assert f"| {name} |" in out
    assert "Results in run/" in out

    metrics = json.loads((run / "metrics.json").read_text())
    gold_n = pl.read_parquet(project / "gold.parquet").height
    test_ids = json.loads((run / "split.json").read_text())["test"]
    assert 0.2 < len(test_ids) / gold_n < 0.45
    for name in ("vader", "vader-calibrated", "learned"):
        result = metrics["backends"][name]
        assert result["n_scored"] == len(test_ids) and result["coverage"] == 1.0
        for metric in ("r2", "mse", "mae", "pearson_r", "spearman_rho", "krippendorff_alpha"):
            estimate = result["metrics"][metric]
            assert estimate["ci_low"] <= estimate["value"] <= estimate["ci_high"], (name, metric)
            assert estimate["n"] == len(test_ids)
    calibrated = metrics["backends"]["vader-calibrated"]["metrics"]["r2"]["value"]
    raw = metrics["backends"]["vader"]["metrics"]["r2"]["value"]
    assert calibrated > 0.1 > raw  # calibration puts the lexicon on the gold's scale
    assert metrics["ranking"][0] in ("vader-calibrated", "learned")

    # Every backend against the best, paired on the same documents.
    paired = metrics["paired_differences"]
    best = paired["baseline"]
    assert best == metrics["ranking"][0] and set(paired["backends"]) == {
        "vader",
        "vader-calibrated",
        "learned",
    } - {best}
    for name, differences in paired["backends"].items():
        for metric in ("r2", "mse"):
            difference = differences[metric]
            figures = [metrics["backends"][b]["metrics"][metric]["value"] for b in (name, best)]
            assert difference["value"] == pytest.approx(figures[0] - figures[1])
            assert difference["ci_low"] <= difference["value"] <= difference["ci_high"]
            assert difference["n"] == len(test_ids)
    assert paired["backends"]["vader"]["r2"]["ci_high"] < 0  # the raw lexicon is off the gold's scale
    assert f"## Against {best}, paired" in (run / "comparison.md").read_text()

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["job"]["backends"][0]["params"]["negation"] == {"window": 3}
    assert set(manifest["data"]["gold"]["files"]) == {"gold.parquet"}
    assert len(manifest["data"]["corpus"]["files"]) == 2
    assert all(len(f["version"]) == 10 for f in manifest["data"]["corpus"]["files"].values())
    assert sum(f["rows"] for f in manifest["data"]["corpus"]["files"].values()) == 3000
    assert manifest["seeds"]["split"] == 7
    assert {"ray", "polars", "numpy", "scikit-learn"} <= set(manifest["libraries"])
    assert "scalecode-dictionary" in [p["name"] for p in manifest["plugins"]["loaded"]]
    assert (
        len(
            manifest["backends"]["vader"]["fingerprint"][
                "" + str(next(iter(manifest["backends"]["vader"]["fingerprint"])))
            ]
        )
        == 64
    )
    assert manifest["timings"]["total"] > 0

    # The learned dictionary is a lexicon a person can open.
    lexicon = (run / "models" / "learned" / "lexicon.csv").read_text().splitlines()
    assert lexicon[0] == "term,category,weight" and len(lexicon) > 5
    notes = metrics["backends"]["learned"]["fit"]["notes"]
    assert any(note.endswith("models/learned/lexicon.csv") for note in notes), notes  # where it is now

    # Every corpus document is coded once by every backend, in shards named after the input files.
    for name in ("vader", "vader-calibrated", "learned"):
        shards = sorted(p.name for p in (run / "predictions" / "corpus" / name).glob("*.parquet"))
        assert {s.split(".parquet.")[0] for s in shards} == {"part-1", "part-2"}
        coded = pl.concat(
            [pl.read_parquet(run / "predictions" / "corpus" / name / s) for s in shards],
            how="diagonal_relaxed",
        )
        assert coded.height == 3000 and coded["id"].n_unique() == 3000
        assert coded["error"].null_count() == 3000
    assert (run / "comparison.md").read_text().startswith("# nyt-sample: regression task")


@pytest.mark.slow
def test_a_second_run_resumes_instead_of_redoing(project, first_run):
    assert first_run.returncode == 0
    run = project / "run"
    before = {p: p.stat().st_mtime_ns for p in (run / "predictions").rglob("*.parquet")}
    figures = json.loads((run / "metrics.json").read_text())
    second = scalecode("run", "job.yaml", "--num-cpus", "2", "--no-progress", cwd=project)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "not training again" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in (run / "predictions").rglob("*.parquet")} == before
    again = json.loads((run / "metrics.json").read_text())
    for key in ("backends", "paired_differences", "ranking"):  # the same figures, rescored
        if key == "backends":
            assert {n: b["metrics"] for n, b in again[key].items()} == {
                n: b["metrics"] for n, b in figures[key].items()
            }
        else:
            assert again[key] == figures[key]


@pytest.mark.slow
def test_score_command_reproduces_the_stored_figures(project, first_run):
    assert first_run.returncode == 0
    run = project / "run"
    result = scalecode(
        "score",
        "run/predictions/gold/vader-calibrated.parquet",
        "gold.parquet",
        "--task",
        "job.yaml",  # which also says how its run read and scored the gold: columns, groups, seed
        "--json",
        "scores.json",
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert "| vader-calibrated |" in result.stdout
    written = json.loads((project / "scores.json").read_text())
    assert written["resampled"] == "groups: group"  # the intervals resample whole editorials
    scores = written["backends"]["vader-calibrated"]
    stored = json.loads((run / "metrics.json").read_text())["backends"]["vader-calibrated"]
    # Gold documents without a prediction count as errors, so this scores the test split only.
    assert scores["n_scored"] == stored["n_scored"]
    assert scores["metrics"]["r2"] == stored["metrics"]["r2"]  # value and interval: the same draws
    by_type = scalecode(
        "score",
        "run/predictions/gold/vader.parquet",
        "gold.parquet",
        "--task",
        "regression",
        "--gold-column",
        "score",
        cwd=project,
    )
    assert by_type.returncode == 0 and "| vader |" in by_type.stdout


def test_score_takes_the_newest_row_of_each_document_in_a_corpus_folder(tmp_path):
    """A corpus folder holds a row per version and per retry of a document; the newest counts."""
    from datetime import datetime, timezone

    folder = tmp_path / "coded"
    folder.mkdir()
    then, now = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)
    schema = {"id": pl.String, "score": pl.Float64, "error": pl.String, "coded_at": pl.Datetime("us", "UTC")}
    rows = {"id": ["a", "b"], "score": [1.0, None], "error": [None, "API error"], "coded_at": [then, then]}
    pl.DataFrame(rows, schema=schema).write_parquet(folder / "first.parquet")
    retried = {"id": ["b"], "score": [2.0], "error": [None], "coded_at": [now]}
    pl.DataFrame(retried, schema=schema).write_parquet(folder / "retry.parquet")
    pl.DataFrame({"id": ["a", "b"], "score": [1.0, 2.0]}).write_csv(tmp_path / "gold.csv")
    result = scalecode(
        "score",
        "coded",
        "gold.csv",
        "--task",
        "regression",
        "--gold-column",
        "score",
        "--json",
        "s.json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "s.json").read_text())["backends"]["coded"]
    assert (scores["n_scored"], scores["n_errors"]) == (2, 0)


def test_a_bad_job_exits_1_naming_the_file_and_key(tmp_path):
    (tmp_path / "job.yaml").write_text(
        "task: {type: regression}\ndata: {corpus: {path: x.csv}}\nbackends: []\noutput: {dir: out}\n"
    )
    result = scalecode("run", "job.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "job.yaml:3: backends:" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_directory_of_another_job_is_refused(project, first_run, tmp_path):
    assert first_run.returncode == 0
    other = (project / "job.yaml").read_text().replace("seed: 7", "seed: 8")
    (project / "other.yaml").write_text(other)
    result = scalecode("run", "other.yaml", "--num-cpus", "2", cwd=project)
    assert result.returncode == 1
    assert "holds a run made from a different job" in result.stderr


def test_a_run_directory_is_refused_once_its_inputs_change_but_not_its_scoring(project, first_run, tmp_path):
    """Same job file; a scoring setting, a gold rating, a lexicon line changed in turn."""
    assert first_run.returncode == 0
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    job = (copy / "job.yaml").read_text()
    (copy / "job.yaml").write_text(job.replace("bootstrap: {n: 300}", "bootstrap: {n: 400}"))
    rescored = scalecode("run", "job.yaml", "--num-cpus", "2", "--no-progress", cwd=copy)
    assert rescored.returncode == 0, rescored.stderr[-2000:]
    assert "vader-calibrated: trained state found" in rescored.stderr  # nothing trained or coded again
    assert json.loads((copy / "run" / "metrics.json").read_text())["bootstrap_resamples"] == 400

    gold = pl.read_parquet(copy / "gold.parquet")
    first = pl.int_range(pl.len()) == 0
    gold.with_columns(
        pl.when(first).then(pl.col("score") + 1).otherwise(pl.col("score")).alias("score")
    ).write_parquet(copy / "gold.parquet")
    result = scalecode("run", "job.yaml", "--num-cpus", "2", cwd=copy)
    assert result.returncode == 1
    assert "holds a run made from other gold documents" in result.stderr
    assert "Traceback" not in result.stderr
    gold.write_parquet(copy / "gold.parquet")  # the same documents again, in a new file

    with (copy / "vader_lexicon.txt").open("a") as lexicon:
        lexicon.write("scalecode\t3.0\t0.5\t[3, 3, 3]\n")
    result = scalecode("run", "job.yaml", "--num-cpus", "2", cwd=copy)
    assert result.returncode == 1
    assert "holds a run made from other files read by vader, vader-calibrated" in result.stderr


@pytest.mark.slow
def test_classification_job_from_jobs_folder(data_dir, tmp_path):
    """jobs/rotten-tomatoes.yaml, on 1,500 real snippets: labels, per-label reports, confusion matrices."""
    import yaml

    from conftest import REPO
    from scalecode.datasets import fetch

    fetch("rotten-tomatoes", data_dir)
    frame = pl.read_parquet(data_dir / "rotten-tomatoes.parquet")
    frame.filter(pl.col("movie").is_in(frame["movie"].unique().sort().head(220).to_list())).head(
        1500
    ).write_parquet(tmp_path / "rt.parquet")
    job = yaml.safe_load((REPO / "jobs" / "rotten-tomatoes.yaml").read_text())
    job["data"]["gold"]["path"] = "rt.parquet"
    for backend in job["backends"]:
        if "lexicon" in backend.get("params", {}):
            backend["params"]["lexicon"] = str(data_dir / "lexicons" / "vader_lexicon.txt")
    job["output"]["dir"] = "run"
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    result = scalecode("run", "job.yaml", "--num-cpus", "2", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["primary_metric"] == "macro_f1"
    for name in ("vader", "vader-calibrated", "learned-dictionary"):
        backend = metrics["backends"][name]
        assert set(backend["metrics"]) == {
            "accuracy",
            "macro_f1",
            "micro_f1",
            "weighted_f1",
            "cohen_kappa",
            "krippendorff_alpha",
        }
        assert set(backend["per_label"]) == {"fresh", "rotten"}
        matrix = backend["confusion"]["matrix"]
        assert sum(map(sum, matrix)) == backend["n_scored"]
        assert backend["metrics"]["accuracy"]["value"] > 0.55  # sentiment words do tell fresh from rotten
    report = (tmp_path / "run" / "comparison.md").read_text()
    assert "| gold \\ predicted | fresh | rotten |" in report
    assert "| label | precision | recall | F1 | support |" in report


SECRETIVE = textwrap.dedent('''
    from pydantic import SecretStr
    from scalecode import Backend, BackendParams, Predictions, TaskType, hookimpl

    class Params(BackendParams):
        api_key: SecretStr

    class Secretive(Backend):
        """Needs a key; answers with its length, so the test can see the key arrived on the worker."""
        name = "secretive"
        task_types = frozenset({TaskType.REGRESSION})
        Params = Params

        def predict_batch(self, texts):
            return Predictions(score=[float(len(self.params.api_key.get_secret_value()))] * len(texts))

    @hookimpl
    def register_backends(register):
        register(Secretive)
''')


@pytest.mark.slow
def test_secrets_from_the_environment_reach_the_worker_and_nothing_else(tmp_path):
    secret = "sk-live-0123456789abcdef"
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "secretive.py").write_text(SECRETIVE)
    pl.DataFrame(
        {
            "id": [f"g{i}" for i in range(20)],
            "text": ["words"] * 20,
            "score": [float(i % 5) for i in range(20)],
        }
    ).write_csv(tmp_path / "gold.csv")
    pl.DataFrame({"id": [f"c{i}" for i in range(30)], "text": ["more words"] * 30}).write_parquet(
        tmp_path / "corpus.parquet"
    )
    (tmp_path / "job.yaml").write_text(
        textwrap.dedent("""
        task: {type: regression}
        data:
          gold: {path: gold.csv, label_column: score}
          corpus: {path: corpus.parquet}
        backends:
          - name: api
            plugin: secretive
            params: {api_key: {"$env": SCALECODE_TEST_KEY}}
        evaluation: {bootstrap: {n: 50}}
        output: {dir: run}
    """)
    )
    env = {**os.environ, "SCALECODE_TEST_KEY": secret}
    result = scalecode(
        "run", "job.yaml", "--plugins-dir", "plugins", "--num-cpus", "2", cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    coded = pl.read_parquet(tmp_path / "run" / "predictions" / "corpus" / "api")
    assert coded["score"].to_list() == [float(len(secret))] * 30  # the key was read on the worker
    leaks = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == []
    assert secret not in result.stdout + result.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["job"]["backends"][0]["params"] == {"api_key": {"$env": "SCALECODE_TEST_KEY"}}


SEEDED = """
from scalecode import Backend, FitReport, Predictions, TaskType, hookimpl

class Seeded(Backend):
    # Predicts the seed it was trained with: which seed each training run got shows in its scores.
    name = "seeded"
    task_types = frozenset({TaskType.REGRESSION})
    trainable = True

    def fit(self, train, eval, config):
        config.output_dir.mkdir(parents=True, exist_ok=True)
        (config.output_dir / "seed").write_text(str(config.seed))
        config.checkpoint_dir.mkdir(parents=True, exist_ok=True)  # as a training loop would
        (config.checkpoint_dir / "epoch-1").write_text(str(config.seed))
        return FitReport(n_train=len(train))

    def predict_batch(self, texts):
        seed = float((self.state_dir / "seed").read_text())
        return Predictions(score=[seed] * len(texts))

@hookimpl
def register_backends(register):
    register(Seeded)
"""


@pytest.mark.slow
def test_learning_curve_for_every_trained_backend(data_dir, tmp_path):
    pl.read_parquet(data_dir / "nyt-editorials.parquet").head(1200).write_parquet(tmp_path / "gold.parquet")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "seeded.py").write_text(SEEDED)
    (tmp_path / "job.yaml").write_text(
        textwrap.dedent(f"""
        task: {{type: regression, scale: {{min: -4, max: 4}}}}
        data: {{gold: {{path: gold.parquet, label_column: score, group_column: group}}}}
        backends:
          - name: vader
            plugin: lexicon
            params: {{lexicon: {data_dir / "lexicons" / "vader_lexicon.txt"}}}
          - name: vader-calibrated
            plugin: lexicon
            params: {{lexicon: {data_dir / "lexicons" / "vader_lexicon.txt"}}}
            train: true
          - name: learned
            plugin: learned-dictionary
            params: {{min_df: 2, cv: 3}}
          - name: seeded
            plugin: seeded
            train: true
        evaluation:
          bootstrap: {{n: 200}}
          learning_curve: {{sizes: [100, 0.5, 100000], repeats: 2}}
        output: {{dir: run}}
    """)
    )
    result = scalecode(
        "run", "job.yaml", "--plugins-dir", "plugins", "--num-cpus", "2", "--no-progress", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["resampled"] == "groups: group"  # editorials resampled whole, not sentences
    assert "resample whole groups (group)" in (tmp_path / "run" / "comparison.md").read_text()
    curves = metrics["learning_curves"]
    assert set(curves) == {"vader-calibrated", "learned", "seeded"}  # the untrained lexicon has no curve
    n_train = len(json.loads((tmp_path / "run" / "split.json").read_text())["train"])
    for points in curves.values():
        assert [p["size"] for p in points] == [100, round(0.5 * n_train), n_train]  # capped at the split
        for point in points:
            assert point["repeats"] == 2 and len(point["runs"]) == 2 and point["failed"] == []
            # The figure is the mean of the repeats'; the interval pools their bootstrap draws, so it
            # lies between theirs (a quantile of a mixture is between its parts', up to the
            # interpolation between neighbouring draws), not necessarily around the mean.
            r2 = point["metrics"]["r2"]
            runs = [run["metrics"]["r2"] for run in point["runs"]]
            assert r2["value"] == pytest.approx(sum(run["value"] for run in runs) / 2)
            assert r2["ci_low"] <= r2["ci_high"] and r2["n"] == min(run["n"] for run in runs)
            slack = 0.01 * (max(run["ci_high"] for run in runs) - min(run["ci_low"] for run in runs))
            for end in ("ci_low", "ci_high"):
                assert (
                    min(run[end] for run in runs) - slack <= r2[end] <= max(run[end] for run in runs) + slack
                )
            assert len({run["seed"] for run in point["runs"]}) == 2
    # Each repeat trained on its own sample: two different training runs at the same size.
    first = curves["learned"][0]["runs"]
    assert first[0]["metrics"]["r2"]["value"] != first[1]["metrics"]["r2"]["value"]
    # Each training run got its repeat's seed, also at the full size, where both repeats hold every
    # training document and would otherwise be copies. The seeded backend predicts its seed: its
    # mean absolute error is the distance from the seed to the test documents' scores.
    test_ids = json.loads((tmp_path / "run" / "split.json").read_text())["test"]
    gold = pl.read_parquet(tmp_path / "gold.parquet").with_columns(pl.col("id").cast(pl.String))
    scores = gold.filter(pl.col("id").is_in(test_ids))["score"].to_numpy()
    for point in curves["seeded"]:
        for run in point["runs"]:
            assert run["metrics"]["mae"]["value"] == pytest.approx(abs(run["seed"] - scores).mean())
    assert "## Learning curves" in (tmp_path / "run" / "comparison.md").read_text()
    # Checkpoints served only while each training ran: none is left behind once its model is saved.
    assert (tmp_path / "run" / "models" / "seeded" / "seed").is_file()
    assert not list((tmp_path / "run" / "checkpoints").glob("seeded*"))
    assert "learned: training documents" in result.stdout
