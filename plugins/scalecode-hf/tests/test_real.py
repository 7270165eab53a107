"""The real all-MiniLM-L6-v2, fine-tuned briefly on real data, must beat a constant predictor."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from scalecode import FitConfig, GoldSet, Task, TaskType
from scalecode.splits import split_gold
from scalecode_hf.encoder import EncoderBackend
from scalecode_hf.options import TrainOptions

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


def fine_tune(minilm, task, train, tmp_path, **options):
    backend = EncoderBackend(task, {"model": str(minilm), "max_length": 64, "batch_size": 64})
    settings = {"epochs": 2, "batch_size": 16, "early_stopping_patience": 0, **options}
    report = backend.fit(
        train, None, FitConfig(output_dir=tmp_path, seed=0, options=TrainOptions(**settings))
    )
    return backend, report


def test_classification_beats_the_majority_label(minilm, data_dir, tmp_path):
    from scalecode.datasets import fetch

    fetch("rotten-tomatoes", data_dir)
    frame = pl.read_parquet(data_dir / "rotten-tomatoes.parquet").sample(900, seed=0)
    task = Task(type=TaskType.CLASSIFICATION, labels=["fresh", "rotten"])
    gold = GoldSet(task, frame["id"].to_list(), frame["text"].to_list(), frame["label"].to_list())
    train, test = split_gold(gold, test_size=0.33, seed=0)
    backend, report = fine_tune(minilm, task, train, tmp_path)
    predicted = backend.predict_batch(test.texts).label
    accuracy = np.mean([p == t for p, t in zip(predicted, test.targets, strict=True)])
    majority = max(test.targets.count("fresh"), test.targets.count("rotten")) / len(test)
    assert accuracy > majority + 0.05, (accuracy, majority)
    assert report.trainable_parameters == report.total_parameters > 22_000_000  # full fine-tuning


def test_regression_beats_the_training_mean(minilm, data_dir, tmp_path):
    frame = pl.read_parquet(data_dir / "nyt-editorials.parquet").sample(1200, seed=0)
    task = Task(type=TaskType.REGRESSION, scale={"min": -4, "max": 4})
    gold = GoldSet(
        task,
        frame["id"].to_list(),
        frame["text"].to_list(),
        frame["score"].to_list(),
        groups=frame["group"].to_list(),
    )
    train, test = split_gold(gold, test_size=0.3, seed=0)
    backend, _ = fine_tune(minilm, task, train, tmp_path, learning_rate=5e-5)
    predicted = np.asarray(backend.predict_batch(test.texts).score)
    truth = test.scores()
    r2 = 1 - np.sum((truth - predicted) ** 2) / np.sum((truth - truth.mean()) ** 2)
    constant = 1 - np.sum((truth - train.scores().mean()) ** 2) / np.sum((truth - truth.mean()) ** 2)
    assert r2 > max(constant, 0) + 0.05, (r2, constant)
