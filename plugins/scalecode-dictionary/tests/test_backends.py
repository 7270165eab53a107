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


def test_raw_classification_ties_go_to_the_default_label():
    task = Task(type=TaskType.CLASSIFICATION, labels=["positive", "negative", "neutral"])
    params = raw_lexicon_params(task)
    backend = LexiconBackend(task, params)
    backend.load()
    texts = ["good bad", "good good bad", "the committee met"]
    assert backend.predict_batch(texts).label == ["neutral", "positive", "neutral"]
    # The order of the keys in label_categories does not decide a tie.
    params["label_categories"] = {"negative": "negative", "positive": "positive"}
    swapped = LexiconBackend(task, params)
    swapped.load()
    assert swapped.predict_batch(texts).label == ["neutral", "positive", "neutral"]


@pytest.mark.parametrize(
    ("negation", "lexicon_text", "message"),
    [
        (
            {"window": 2, "words": ["not", "no one"]},
            "positive: [good]\n",
            "negator 'no one' must be a single token",
        ),
        ({}, f"positive: [{'a' * 64}*]\n", "is longer than 63 characters"),
    ],
    ids=["two-token-negator", "long-wildcard"],
)
def test_check_refuses_what_the_scorer_cannot_compile(write, negation, lexicon_text, message):
    task = Task(type=TaskType.REGRESSION, scale={"min": -1, "max": 1})
    params = LexiconBackend.Params.model_validate(
        {"lexicon": str(write("lexicon.yml", lexicon_text)), "negation": negation}
    )
    with pytest.raises(ValueError, match=message):
        LexiconBackend.check(task, params, train=True)


def _subset(gold: GoldSet, rows: list[int], groups: list[str] | None = None) -> GoldSet:
    return GoldSet(
        task=gold.task,
        ids=[gold.ids[i] for i in rows],
        texts=[gold.texts[i] for i in rows],
        targets=[gold.targets[i] for i in rows],
        groups=groups,
    )


def _degenerate_training_sets() -> list:
    from scalecode.testing import sample_gold, sample_task

    labels = sample_gold(sample_task(TaskType.CLASSIFICATION), n=30)  # labels cycle pos, neg, neutral
    scores = sample_gold(sample_task(TaskType.REGRESSION), n=30)
    topics = sample_gold(sample_task(TaskType.MULTILABEL), n=30)
    return [
        pytest.param(_subset(labels, [0, 3, 6, 9, 12]), "one label", id="one-label"),
        pytest.param(_subset(labels, list(range(12)), ["g"] * 12), None, id="labels-one-group"),
        pytest.param(_subset(labels, [0, 1, 2]), "too few", id="one-document-per-label"),
        pytest.param(_subset(scores, list(range(10)), ["g"] * 10), None, id="scores-one-group"),
        pytest.param(_subset(scores, [0, 1, 2]), None, id="scores-fewer-than-cv"),
        pytest.param(_subset(scores, [0]), "too few", id="one-score"),
        pytest.param(_subset(topics, [0, 1]), None, id="topics-two-documents"),
        pytest.param(_subset(topics, list(range(8)), ["g"] * 8), None, id="topics-one-group"),
    ]


@pytest.mark.parametrize(("train", "note"), _degenerate_training_sets())
def test_learned_dictionary_fits_degenerate_training_sets(train, note, tmp_path):
    backend = LearnedDictionaryBackend(train.task, {"min_df": 1, "cv": 5})
    report = backend.fit(train, None, FitConfig(output_dir=tmp_path / "state", seed=0))
    assert note is None or any(note in line for line in report.notes)
    predictions = backend.predict_batch(["a good day", "a crisis"])
    if train.task.type is TaskType.CLASSIFICATION:
        assert set(predictions.label) <= set(train.targets)
        if note == "one label":
            assert predictions.label == [train.targets[0]] * 2
    elif train.task.type is TaskType.REGRESSION and note is not None:
        assert list(predictions.score) == [np.mean(train.scores())] * 2
    fresh = LearnedDictionaryBackend(train.task, {"min_df": 1}, state_dir=tmp_path / "state")
    fresh.load()
    again = fresh.predict_batch(["a good day", "a crisis"])
    assert (again.label, again.labels) == (predictions.label, predictions.labels)
    np.testing.assert_array_equal(np.asarray(again.score), np.asarray(predictions.score))


def test_cross_validation_folds_fit_the_data():
    from sklearn.model_selection import KFold, StratifiedKFold

    from scalecode_dictionary.backends import cross_validation_folds

    groups = np.array(["a", "a", "b", "b", "c", "c"])
    assert len(cross_validation_folds(6, 5, 0, groups=groups)) == 3  # one fold per group
    plain = cross_validation_folds(6, 5, 0, groups=np.array(["a"] * 6))
    assert isinstance(plain, KFold) and plain.get_n_splits() == 5
    assert cross_validation_folds(3, 5, 0).get_n_splits() == 3
    assert cross_validation_folds(1, 5, 0) is None
    labels = np.array(["x", "x", "x", "y"])
    stratified = cross_validation_folds(4, 5, 0, labels=labels)
    assert isinstance(stratified, StratifiedKFold) and stratified.get_n_splits() == 2
    assert cross_validation_folds(2, 5, 0, labels=np.array(["x", "y"])) is None
