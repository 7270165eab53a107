"""The dictionary backends pass the conformance kit and do what they promise on real data."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl
import pytest

from scalecode import FitConfig, GoldSet, Task, TaskType
from scalecode.splits import split_gold
from scalecode.testing import BackendConformance
from scalecode_dictionary import LearnedDictionaryBackend, LexiconBackend, read_lexicon
from scalecode_dictionary.backends import LEARNED_LEXICON_FILE

LEXICON = Path(__file__).with_name("sample_lexicon.yml")


def raw_lexicon_params(task: Task) -> dict:
    """Without training, the lexicon needs a rule from its categories to the codebook."""
    params: dict = {"lexicon": str(LEXICON), "negation": {"window": 3}}
    if task.type is TaskType.CLASSIFICATION:
        params |= {
            "label_categories": {"positive": "positive", "negative": "negative"},
            "default_label": "neutral",
        }
    elif task.type is TaskType.MULTILABEL:
        params |= {"label_categories": {name: name for name in task.label_names}}
    return params


class TestLexiconConformance(BackendConformance):
    backend_class = LexiconBackend
    params = raw_lexicon_params


class TestLearnedDictionaryConformance(BackendConformance):
    backend_class = LearnedDictionaryBackend
    params: ClassVar[dict] = {"min_df": 1, "cv": 3}


@pytest.fixture(scope="module")
def nyt(data_dir):
    frame = pl.read_parquet(data_dir / "nyt-editorials.parquet")
    task = Task(type=TaskType.REGRESSION, scale={"min": -4, "max": 4})
    gold = GoldSet(
        task=task,
        ids=frame["id"].to_list(),
        texts=frame["text"].to_list(),
        targets=frame["score"].to_list(),
        groups=frame["group"].to_list(),
    )
    return split_gold(gold, test_size=0.3, seed=0)


def r2(gold: GoldSet, predicted) -> float:
    y = gold.scores()
    return 1 - np.sum((y - np.asarray(predicted)) ** 2) / np.sum((y - y.mean()) ** 2)


def test_calibration_puts_a_lexicon_on_the_gold_scale(data_dir, nyt, tmp_path):
    train, test = nyt
    params = {"lexicon": str(data_dir / "lexicons" / "vader_lexicon.txt"), "negation": {"window": 3}}
    raw = LexiconBackend(train.task, params)
    raw.load()
    calibrated = LexiconBackend(train.task, params)
    calibrated.load()
    calibrated.fit(train, None, FitConfig(output_dir=tmp_path / "cal"))
    raw_r2 = r2(test, raw.predict_batch(test.texts).score)
    calibrated_r2 = r2(test, calibrated.predict_batch(test.texts).score)
    # VADER's mean valence correlates with the ratings but sits on its own scale.
    assert raw_r2 < 0 < 0.15 < calibrated_r2


def test_learned_dictionary_is_a_readable_lexicon_that_reproduces_the_model(nyt, tmp_path):
    from sklearn.feature_extraction.text import CountVectorizer

    train, test = nyt
    backend = LearnedDictionaryBackend(train.task, {"min_df": 3})
    report = backend.fit(train, None, FitConfig(output_dir=tmp_path / "learned", seed=0))
    assert report.n_train == len(train)
    predicted = np.asarray(backend.predict_batch(test.texts).score)
    assert r2(test, predicted) > 0.02  # better than the mean of the training scores

    # The exported file is a lexicon anyone can read: the words with the largest weights carry tone.
    lexicon = read_lexicon(tmp_path / "learned" / LEARNED_LEXICON_FILE)
    top = [e.tokens[0] for e in sorted(lexicon.entries, key=lambda e: -e.weights[0][1])[:15]]
    assert {"good", "healthy"} & set(top) or any(w in top for w in ("best", "great", "success"))

    # Its predictions are the sparse linear model's: intercept + 100 * weighted count / tokens.
    from scalecode_dictionary import tokenize

    vocabulary = {e.tokens[0]: e.weights[0][1] for e in lexicon.entries}
    vectorizer = CountVectorizer(
        tokenizer=tokenize, lowercase=False, token_pattern=None, vocabulary=list(vocabulary)
    )
    counts = vectorizer.transform(test.texts)
    tokens = np.array([max(len(tokenize(t)), 1) for t in test.texts])
    by_sklearn = backend.model["intercept"][0] + 100 * (counts @ np.array(list(vocabulary.values()))) / tokens
    np.testing.assert_allclose(predicted, by_sklearn, rtol=1e-9, atol=1e-12)

    # A fresh instance built from the saved state (as a Ray worker builds it) predicts the same.
    fresh = LearnedDictionaryBackend(train.task, {"min_df": 3}, state_dir=tmp_path / "learned")
    fresh.load()
    np.testing.assert_array_equal(np.asarray(fresh.predict_batch(test.texts).score), predicted)


def test_learned_dictionary_for_classification_exports_one_category_per_label(tmp_path):
    from scalecode.testing import sample_gold, sample_task

    task = sample_task(TaskType.CLASSIFICATION)
    gold = sample_gold(task, n=150)
    backend = LearnedDictionaryBackend(task, {"min_df": 1, "cv": 3})
    backend.fit(gold, None, FitConfig(output_dir=tmp_path / "state"))
    lexicon = read_lexicon(tmp_path / "state" / LEARNED_LEXICON_FILE)
    assert set(lexicon.categories) <= set(task.label_names)
    predictions = backend.predict_batch(["a good great excellent win", "a terrible crisis of fear"])
    assert predictions.label == ["positive", "negative"]
    assert np.allclose(sum(np.asarray(p) for p in predictions.probabilities.values()), 1.0)


def test_raw_lexicon_classification_uses_the_label_map():
    task = Task(type=TaskType.CLASSIFICATION, labels=["positive", "negative", "neutral"])
    backend = LexiconBackend(task, raw_lexicon_params(task))
    backend.load()
    out = backend.predict_batch(["great jobs", "not good", "the committee met", "bad bad good"])
    assert out.label == ["positive", "negative", "neutral", "negative"]
    assert "count_positive" in out.extra and "net_tone" in out.extra


def test_check_rejects_options_that_do_not_fit_the_codebook():
    task = Task(type=TaskType.CLASSIFICATION, labels=["pro", "anti"])
    params = LexiconBackend.Params.model_validate(
        {"lexicon": str(LEXICON), "label_categories": {"pro": "nope"}}
    )
    with pytest.raises(ValueError, match=r"categories not in the lexicon \['nope'\]"):
        LexiconBackend.check(task, params, train=False)
    LexiconBackend.check(task, params, train=True)  # calibration needs no map
