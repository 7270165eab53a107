"""Conformance checks a plugin author runs against their backend.

With pytest, subclass ``BackendConformance``; its ``test_*`` methods are collected::

    from scalecode.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend_class = MyBackend
        params = {"threshold": 0.5}

``params`` may also be a function of the task (``sample_task(type)``) when options depend on the
codebook, for instance a mapping from its labels.

Without pytest, call ``check_backend(MyBackend, params={...})``; it raises AssertionError naming the
first broken promise. The checks cover the contract the rest of scalecode relies on: the class can be
registered and its options reject unknown keys; every task type it declares gets one valid code per
document, in order, deterministically and independently of batching; probabilities are
probabilities; an empty batch works; a trained backend writes its state as files (no pickles) from
which a fresh instance, built the way Ray workers build it, predicts the same.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from scalecode.backend import Backend, FitConfig, GoldSet, Predictions, Resources
from scalecode.plugins import check_backend_class
from scalecode.predictions import code_column, predictions_table
from scalecode.task import Example, Task, TaskType

SAMPLE_TEXTS = [
    "The economy is growing and wages are rising; a great year for workers.",
    "Terrible news: the hospital closed and patients were sent away.",
    "The committee will meet on Tuesday.",
    "Not good, not good at all.",
    "Élan, naïveté and façade: Unicode words should not break anything. 😀 🇺🇳",
    "مرحبا بالعالم — a right-to-left phrase inside English text.",
    "!!! ??? ...",
    "word " * 2000,
    "SHOUTING IN CAPITALS ABOUT TAXES AND BORDERS",
    "Short.",
]

_POSITIVE = ["good", "great", "excellent", "growing", "rising", "hope", "strong", "win"]
_NEGATIVE = ["bad", "terrible", "closed", "falling", "crisis", "weak", "lose", "fear"]
_TOPICS = {
    "economy": ["wages", "jobs", "taxes", "growth", "prices"],
    "health": ["hospital", "patients", "doctors", "vaccine", "care"],
    "security": ["border", "army", "police", "defense", "crime"],
}


def sample_task(task_type: TaskType) -> Task:
    """A small codebook of each type, used by the checks."""
    if task_type is TaskType.CLASSIFICATION:
        return Task(
            name="tone",
            type=task_type,
            instructions="The tone of the sentence.",
            labels={
                "positive": "approves or praises",
                "negative": "criticises or fears",
                "neutral": "neither",
            },
        )
    if task_type is TaskType.MULTILABEL:
        return Task(
            name="topics",
            type=task_type,
            instructions="Every topic the sentence is about.",
            labels=list(_TOPICS),
        )
    return Task(
        name="tone score", type=task_type, instructions="Tone from -1 to +1.", scale={"min": -1, "max": 1}
    )


def review_task() -> Task:
    """A two-label codebook with label descriptions and two few-shot examples: what a prompt-based
    backend's tests need to see every part of a prompt (instructions, labels, examples) rendered."""
    return Task(
        type=TaskType.CLASSIFICATION,
        instructions="Classify the sentiment of the movie review.",
        labels={"positive": "the reviewer liked the film", "negative": "the reviewer disliked the film"},
        examples=[
            Example(text="A delight from start to finish.", label="positive"),
            Example(text="Dull, long and pointless.", label="negative"),
        ],
    )


def sample_gold(task: Task, n: int = 60, seed: int = 0) -> GoldSet:
    """Synthetic gold documents whose words carry the signal, so a trainable backend can learn."""
    rng = np.random.default_rng(seed)
    ids, texts, targets = [], [], []
    filler = ["the", "council", "said", "today", "that", "report", "was", "about", "our", "city"]
    for i in range(n):
        words = list(rng.choice(filler, size=6))
        if task.type is TaskType.REGRESSION:
            positive, negative = int(rng.integers(0, 4)), int(rng.integers(0, 4))
            words += list(rng.choice(_POSITIVE, positive)) + list(rng.choice(_NEGATIVE, negative))
            target: Any = float(np.clip((positive - negative) / 3, -1, 1))
        elif task.type is TaskType.CLASSIFICATION:
            target = task.label_names[i % len(task.labels)]
            pool = {"positive": _POSITIVE, "negative": _NEGATIVE}.get(target, filler)
            words += list(rng.choice(pool, 3))
        else:
            chosen = [t for t in task.label_names if rng.random() < 0.4] or [
                task.label_names[i % len(task.labels)]
            ]
            for topic in chosen:
                words += list(rng.choice(_TOPICS[topic], 2))
            target = tuple(chosen)
        rng.shuffle(words)
        ids.append(f"doc-{i:03d}")
        texts.append(" ".join(words).capitalize() + ".")
        targets.append(target)
    return GoldSet(task=task, ids=ids, texts=texts, targets=targets)


def _predict(backend: Backend, texts: Sequence[str]) -> pa.Table:
    answers = backend.predict_batch(list(texts))
    assert isinstance(answers, Predictions), (
        f"predict_batch returned {type(answers).__name__}, not Predictions"
    )
    return predictions_table(
        answers, ids=[f"t{i}" for i in range(len(texts))], backend="check", task=backend.task
    )


def _codes(table: pa.Table, task: Task) -> list[Any]:
    codes: list[Any] = table.column(code_column(task)).to_pylist()
    return codes


def _same(a: list[Any], b: list[Any], what: str) -> None:
    assert len(a) == len(b), f"{what}: {len(a)} codes against {len(b)}"
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if isinstance(x, float) and isinstance(y, float):
            # Padding and batching reorder floating-point sums; a thousandth of a percent is the same code.
            assert math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6), f"{what}: document {i}: {x} != {y}"
        else:
            assert x == y, f"{what}: document {i}: {x!r} != {y!r}"


def _is_pickle(data: bytes) -> bool:
    """A pickle (protocol 2 or later) opens with PROTO 0x80 <n> and closes with STOP '.'.

    A safetensors file can open with the same two bytes (its header length), but has JSON at byte 8.
    """
    if len(data) < 3 or data[0] != 0x80 or not 2 <= data[1] <= 5 or data[-1:] != b".":
        return False
    return data[8:9] != b"{"


def _pickles(folder: Path) -> list[str]:
    """Files in a trained state that are pickles, or zip archives holding pickles (torch.save)."""
    import zipfile

    found = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if _is_pickle(data):
            found.append(str(path))
        elif data[:2] == b"PK" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if any(n.endswith((".pkl", ".pickle")) for n in archive.namelist()):
                    found.append(str(path))
    return found


def check_contract(backend_class: type[Backend]) -> None:
    """The class can be registered and its options reject unknown keys."""
    problem = check_backend_class(backend_class, backend_class.name)
    assert problem is None, f"{backend_class.__name__} cannot be registered: {problem}"
    try:
        backend_class.Params.model_validate({"surely_not_an_option_": 1})
    except Exception:
        pass
    else:
        raise AssertionError(f"{backend_class.__name__}.Params accepts unknown keys")


def build(
    backend_class: type[Backend], task: Task, params: Mapping[str, Any], state_dir: Path | None = None
) -> Backend:
    """Build and load a backend the way a Ray worker does."""
    backend = backend_class(task, dict(params), state_dir=state_dir)
    backend.load()
    return backend


Params = Mapping[str, Any] | Callable[[Task], Mapping[str, Any]]


def check_task(
    backend_class: type[Backend],
    task_type: TaskType,
    params: Params,
    workdir: Path,
    *,
    train_params: Mapping[str, Any] | None = None,
    batch_invariant: bool = True,
) -> None:
    """Every promise for one task type (training first when the backend requires it)."""
    task = sample_task(task_type)
    params = params(task) if callable(params) else params
    validated = backend_class.Params.model_validate(dict(params))
    will_train = backend_class.requires_training
    if backend_class.trainable and not will_train:
        try:  # a backend that cannot code untrained with these options says so in check()
            backend_class.check(task, validated, train=False)
        except ValueError:
            will_train = True
    backend_class.check(task, validated, train=will_train)
    backend = backend_class(task, dict(params))
    resources = backend.resources()
    assert isinstance(resources, Resources), "resources() must return scalecode.Resources"
    assert resources.cpus >= 0, f"bad resources {resources}"
    assert resources.gpus >= 0, f"bad resources {resources}"
    assert resources.batch_size > 0, f"bad resources {resources}"
    backend.load()
    state = workdir / f"state-{task_type.value}"
    if will_train:
        _fit(backend, task, state, train_params)

    table = _predict(backend, SAMPLE_TEXTS)
    assert table.num_rows == len(SAMPLE_TEXTS), "one prediction per document"
    errors = table.column("error").to_pylist()
    ordinary = [
        i for i, text in enumerate(SAMPLE_TEXTS) if len(text) < 500 and any(c.isalpha() for c in text)
    ]
    failed = {i: errors[i] for i in ordinary if errors[i] is not None}
    assert not failed, f"ordinary documents were not coded: {failed}"
    codes = _codes(table, task)
    _check_confidence(table, task)

    _same(_codes(_predict(backend, SAMPLE_TEXTS), task), codes, "predicting twice")
    if batch_invariant:
        for i in (0, 3, len(SAMPLE_TEXTS) - 1):
            alone = _codes(_predict(backend, [SAMPLE_TEXTS[i]]), task)
            _same(alone, [codes[i]], f"document {i} alone against in a batch")
        reversed_codes = _codes(_predict(backend, list(reversed(SAMPLE_TEXTS))), task)
        _same(list(reversed(reversed_codes)), codes, "order of the batch")
    empty = backend.predict_batch([])
    assert predictions_table(empty, ids=[], backend="check", task=task).num_rows == 0, "an empty batch"

    fingerprint = backend.fingerprint()
    assert isinstance(fingerprint, dict), "fingerprint() must return a dict of strings"
    assert all(isinstance(v, str) for v in fingerprint.values()), (
        "fingerprint() must return a dict of strings"
    )

    if backend_class.trainable and not will_train:
        trained = backend_class(task, dict(params))
        trained.load()
        _fit(trained, task, state, train_params)
        codes = _codes(_predict(trained, SAMPLE_TEXTS), task)
    if backend_class.trainable:
        fresh = build(backend_class, task, params, state_dir=state)
        _same(
            _codes(_predict(fresh, SAMPLE_TEXTS), task), codes, "a fresh instance loading the trained state"
        )


def _fit(backend: Backend, task: Task, state: Path, train_params: Mapping[str, Any] | None) -> None:
    gold = sample_gold(task)
    options = type(backend).TrainParams.model_validate(dict(train_params or {}))
    backend.fit(
        gold.subset(range(48)),
        gold.subset(range(48, 60)),
        FitConfig(output_dir=state, seed=0, options=options),
    )
    assert state.is_dir(), f"fit() wrote no trained state to {state}"
    assert any(state.iterdir()), f"fit() wrote no trained state to {state}"
    pickles = _pickles(state)
    assert not pickles, f"trained state must not be pickled (loading a pickle runs code): {pickles}"


def _check_confidence(table: pa.Table, task: Task) -> None:
    for value in table.column("confidence").to_pylist():
        assert value is None or 0.0 <= value <= 1.0, f"confidence {value} is not a probability"
    if task.type is TaskType.CLASSIFICATION and "probabilities" in table.column_names:
        for row in table.column("probabilities").to_pylist():
            if row is not None:
                total = sum(row.values())
                assert abs(total - 1.0) < 1e-6, f"label probabilities sum to {total}, not 1"


def check_backend(
    backend_class: type[Backend],
    params: Params | None = None,
    *,
    task_types: Sequence[TaskType] | None = None,
    train_params: Mapping[str, Any] | None = None,
    batch_invariant: bool = True,
) -> None:
    """Run every check; raise AssertionError naming the first broken promise."""
    check_contract(backend_class)
    with tempfile.TemporaryDirectory() as tmp:
        for task_type in task_types or sorted(backend_class.task_types, key=lambda t: t.value):
            check_task(
                backend_class,
                task_type,
                params or {},
                Path(tmp),
                train_params=train_params,
                batch_invariant=batch_invariant,
            )


class BackendConformance:
    """Subclass in a pytest module and set ``backend_class`` (and ``params``) to run the checks."""

    backend_class: ClassVar[type[Backend]]
    params: ClassVar[Params] = {}
    train_params: ClassVar[Mapping[str, Any] | None] = None
    task_types: ClassVar[Sequence[TaskType] | None] = None
    batch_invariant: ClassVar[bool] = True  # set False for backends whose answers depend on batch company

    def test_contract(self) -> None:
        check_contract(self.backend_class)

    def test_classification(self, tmp_path: Path) -> None:
        self._task(TaskType.CLASSIFICATION, tmp_path)

    def test_multilabel(self, tmp_path: Path) -> None:
        self._task(TaskType.MULTILABEL, tmp_path)

    def test_regression(self, tmp_path: Path) -> None:
        self._task(TaskType.REGRESSION, tmp_path)

    def _task(self, task_type: TaskType, tmp_path: Path) -> None:
        declared = self.task_types or self.backend_class.task_types
        if task_type not in declared:
            import pytest

            if task_type in self.backend_class.task_types:
                pytest.skip(f"{task_type} is not among the task types this test class checks")
            pytest.skip(f"{self.backend_class.__name__} does not code {task_type} tasks")
        # Read through the class: a function assigned in a class body would otherwise bind to self.
        params = type(self).params
        check_task(
            self.backend_class,
            task_type,
            params,
            tmp_path,
            train_params=self.train_params,
            batch_invariant=self.batch_invariant,
        )
