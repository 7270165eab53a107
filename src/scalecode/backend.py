"""The Backend contract: what a coder (dictionary, API model, open model) implements.

A minimal backend fills in one method::

    class Shouty(Backend):
        name = "shouty"
        task_types = frozenset({TaskType.CLASSIFICATION})

        def predict_batch(self, texts):
            labels = self.task.label_names
            return Predictions(label=[labels[0] if t.isupper() else labels[1] for t in texts])

Backends are rebuilt by name on every Ray worker from their task, params and trained state
(``state_dir``); instances are never pickled across the cluster. So everything heavy happens in
``load()``, and everything ``fit()`` learns is written as files (no pickle) under
``config.output_dir``, from which a fresh instance built with ``state_dir=`` that folder loads it.
A backend that must remember something between runs of a job (a response cache, the ids of batch
jobs it submitted) keeps it in ``work_dir``, a folder of the run directory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined

from scalecode.task import Task, TaskType


def operational(default: Any = PydanticUndefined, **kwargs: Any) -> Any:
    """A ``Field`` for an option that changes how a backend runs, not what it codes.

    Concurrency, rate limits, timeouts, retries, prices and budgets, devices, CPUs and the batch
    size of coding. A run directory may be resumed after one of them changed (a budget raised,
    concurrency lowered after too many 429s), so they are left out of the run's identity; any
    other option changed refuses the directory, since its models and predictions came from it.
    """
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    return Field(default, json_schema_extra={**extra, "operational": True}, **kwargs)


class BackendParams(BaseModel):
    """Base of every backend's options: validated on the driver, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def operational_options(cls) -> frozenset[str]:
        """The names of the options declared with ``operational()``."""
        return frozenset(
            name
            for name, info in cls.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("operational")
        )

    @classmethod
    def result_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` as a job wrote them, less the operational ones: what the codes depend on."""
        skip = cls.operational_options()
        return {key: value for key, value in options.items() if key not in skip}


@dataclass(frozen=True)
class Resources:
    """What one replica of a backend needs; Ray places replicas from it."""

    cpus: float = 1.0
    gpus: float = 0.0
    batch_size: int = 256  # documents per predict_batch call
    # At most this many replicas: an API client keeps its rate limits and budget exact in one
    # process, and reaches its throughput with asynchronous requests, not more processes.
    max_replicas: int | None = None


@dataclass(frozen=True)
class Estimate:
    """What coding some documents would take, before anything is sent (``scalecode plan``).

    ``cached`` counts requests already answered (in a response cache), which cost nothing again.
    """

    documents: int = 0
    requests: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # None: no price known for the model
    notes: tuple[str, ...] = ()


@dataclass
class Predictions:
    """What ``predict_batch`` returns: one entry per input text, in input order.

    Fill the field for the task type (``label``, ``labels`` or ``score``); the rest is optional.
    ``error`` marks documents the backend could not code (the reason, or None); ``retry`` marks those
    errors that may pass (a timeout, a rate limit, a server that is down): their error rows are
    written like any other, and the next run over the same directory codes those documents again.
    ``raw`` keeps a backend's raw answer, which is stored when the answer is not a valid code.
    ``extra`` carries backend-specific columns (dictionary counts, tokens, cost) into the predictions
    file.
    """

    label: Sequence[str | None] | None = None
    labels: Sequence[Sequence[str] | None] | None = None
    score: Sequence[float | None] | np.ndarray | None = None
    confidence: Sequence[float | None] | np.ndarray | None = None
    probabilities: Mapping[str, Sequence[float] | np.ndarray] | None = None
    error: Sequence[str | None] | None = None
    retry: Sequence[bool] | None = None
    raw: Sequence[str | None] | None = None
    extra: Mapping[str, Sequence[Any] | np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class GoldSet:
    """Human-coded documents handed to ``fit``: ids, texts and their codes, in one order.

    ``targets`` holds a label (classification), a tuple of labels (multilabel) or a float
    (regression) per document. ``groups`` holds the grouping value (speech, author) where the job
    names a group column.
    """

    task: Task
    ids: list[str]
    texts: list[str]
    targets: list[Any]
    groups: list[str] | None = None

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.texts) == len(self.targets):
            raise ValueError("ids, texts and targets must have the same length")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: Sequence[int] | np.ndarray) -> GoldSet:
        idx = [int(i) for i in indices]
        return GoldSet(
            task=self.task,
            ids=[self.ids[i] for i in idx],
            texts=[self.texts[i] for i in idx],
            targets=[self.targets[i] for i in idx],
            groups=None if self.groups is None else [self.groups[i] for i in idx],
        )

    def label_codes(self) -> np.ndarray:
        """Classification targets as indices into the codebook's labels."""
        index = {name: i for i, name in enumerate(self.task.label_names)}
        return np.array([index[t] for t in self.targets], dtype=np.int64)

    def label_indicator(self) -> np.ndarray:
        """Multi-label targets as an n x labels 0/1 matrix, columns in codebook order."""
        names = self.task.label_names
        matrix = np.zeros((len(self), len(names)), dtype=np.int8)
        index = {name: i for i, name in enumerate(names)}
        for row, labels in enumerate(self.targets):
            for label in labels:
                matrix[row, index[label]] = 1
        return matrix

    def scores(self) -> np.ndarray:
        """Regression targets as floats."""
        return np.asarray(self.targets, dtype=np.float64)


@dataclass(frozen=True)
class FitConfig:
    """How to train: where the trained state goes, the seed, and the job's training options.

    ``checkpoint_dir`` outlives an interrupted run: a backend that checkpoints during training
    writes there and, given the same folder again, resumes from the latest checkpoint.
    """

    output_dir: Path
    seed: int = 0
    options: BackendParams = field(default_factory=BackendParams)
    checkpoint_dir: Path | None = None


@dataclass
class FitReport:
    """What training reports back; it lands in metrics.json and the manifest."""

    seconds: float = 0.0
    n_train: int = 0  # documents the kept model learned from
    n_eval: int = 0  # documents held out to choose epochs or options (a refit learns from them too)
    trainable_parameters: int | None = None
    total_parameters: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Backend(ABC):
    """Base class of every coder. Subclasses set the class attributes and ``predict_batch``.

    Class attributes:
        name: the default name it is registered under (``register(..., name=)`` may override).
        description: one line for ``scalecode backends``.
        task_types: the task types it can code.
        trainable: whether ``fit`` is implemented.
        requires_training: whether it cannot predict before ``fit`` (a learned dictionary).
        Params: the pydantic model of its options (unknown keys are an error).
        TrainParams: the pydantic model of its training options (the job's ``train:`` mapping).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    task_types: ClassVar[frozenset[TaskType]] = frozenset()
    trainable: ClassVar[bool] = False
    requires_training: ClassVar[bool] = False
    Params: ClassVar[type[BackendParams]] = BackendParams
    TrainParams: ClassVar[type[BackendParams]] = BackendParams
    work_dir: Path | None = None

    def __init__(
        self,
        task: Task,
        params: BackendParams | Mapping[str, Any] | None = None,
        *,
        state_dir: str | Path | None = None,
        work_dir: str | Path | None = None,
    ) -> None:
        # ``work_dir`` is also set on a built instance by the core (see BackendSpec.build), so a
        # backend that defines its own __init__ need not accept it.
        if task.type not in self.task_types:
            supported = ", ".join(sorted(str(t) for t in self.task_types))
            raise ValueError(f"{type(self).__name__} codes {supported}, not {task.type}")
        self.task = task
        self.params = params if isinstance(params, self.Params) else self.Params.model_validate(params or {})
        self.state_dir = Path(state_dir) if state_dir is not None else None
        # A folder of the run directory the backend may keep across runs of the same job (a response
        # cache, the ids of submitted batch jobs); None outside a run.
        self.work_dir = Path(work_dir) if work_dir is not None else None

    @classmethod  # noqa: B027 - an optional hook: most backends have nothing to check
    def check(cls, task: Task, params: BackendParams, *, train: bool) -> None:
        """Validate options against the task on the driver, before any work starts.

        Raise ValueError with a message naming the option at fault. ``train`` says whether the job
        trains this backend. Keep it cheap: reading a small file is fine, loading a model is not.
        """

    def resources(self) -> Resources:
        """What one replica needs (CPUs, GPUs, batch size). Override for GPU models."""
        return Resources()

    def load(self) -> None:  # noqa: B027 - optional hook with nothing to do by default
        """Heavy set-up (weights, clients, trained state), called once per Ray actor before predicting."""

    @abstractmethod
    def predict_batch(self, texts: Sequence[str]) -> Predictions:
        """Code a batch of non-empty texts; return one prediction per text, in order."""

    def fit(self, train: GoldSet, eval: GoldSet | None, config: FitConfig) -> FitReport:
        """Train on gold documents and write the trained state (no pickle) to ``config.output_dir``."""
        raise NotImplementedError(f"{type(self).__name__} is not trainable")

    def estimate(self, texts: Sequence[str]) -> Estimate | None:
        """Requests, tokens and cost of coding ``texts``, without sending anything; None: free to run.

        Backends that pay per call (APIs) override it; ``scalecode plan`` shows it before a run.
        """
        return None

    def fingerprint(self) -> dict[str, str]:
        """Hashes of the files the predictions depend on (lexicons, weights), for the manifest."""
        return {}
