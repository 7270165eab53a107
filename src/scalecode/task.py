"""The codebook: what is being coded, with which labels or which score, and the coders' instructions."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class TaskType(str, Enum):
    """The three kinds of coding task scalecode knows."""

    CLASSIFICATION = "classification"  # exactly one label per document
    MULTILABEL = "multilabel"  # any subset of the labels per document
    REGRESSION = "regression"  # a continuous score per document

    def __str__(self) -> str:
        return self.value


class Label(BaseModel):
    """One label of the codebook, with the description a human coder (or a prompt) reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""


class ScoreRange(BaseModel):
    """The scale of a regression task, e.g. -4 to +4 for mean sentiment ratings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> ScoreRange:
        if not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class Example(BaseModel):
    """A coded document a prompt-based coder is shown before the document to code (few-shot)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1)
    label: str | None = None  # classification
    labels: tuple[str, ...] | None = None  # multi-label
    score: float | None = None  # regression
    id: str | None = None  # the gold id, when drawn from the gold documents


class Task(BaseModel):
    """A coding task: its type, its labels (or score range) and the instructions.

    ``labels`` accepts a list of names, a list of ``{name, description}`` or a mapping of
    name to description, so a codebook can be written as tersely as a researcher likes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "task"
    type: TaskType
    instructions: str = ""
    labels: tuple[Label, ...] = ()
    ordinal: bool = False  # labels are ordered (first to last): enables ordinal agreement
    scale: ScoreRange | None = None  # regression only
    examples: tuple[Example, ...] = ()  # few-shot examples for prompt-based coders
    examples_from_gold: int = Field(0, ge=0)  # draw this many more from the gold training split (per label)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return [{"name": str(k), "description": v or ""} for k, v in value.items()]
        if isinstance(value, list):
            return [{"name": str(v)} if isinstance(v, str | int) else v for v in value]
        return value

    @model_validator(mode="after")
    def _labels_fit_type(self) -> Task:
        names = [label.name for label in self.labels]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"labels must be unique; repeated: {', '.join(duplicated)}")
        if self.type is TaskType.REGRESSION:
            if self.labels:
                raise ValueError("a regression task has a score, not labels; remove 'labels'")
            if self.ordinal:
                raise ValueError("'ordinal' applies to labels; a regression score is already ordered")
        else:
            minimum = 2 if self.type is TaskType.CLASSIFICATION else 1
            if len(self.labels) < minimum:
                raise ValueError(f"a {self.type} task needs at least {minimum} labels")
            if self.scale is not None:
                raise ValueError("'scale' applies to regression tasks only")
        for i, example in enumerate(self.examples):
            problem = self._example_problem(example)
            if problem:
                raise ValueError(f"examples[{i}]: {problem}")
        return self

    def _example_problem(self, example: Example) -> str | None:
        names = set(self.label_names)
        if self.type is TaskType.CLASSIFICATION:
            if example.label not in names:
                return f"label {example.label!r} is not in the codebook"
        elif self.type is TaskType.MULTILABEL:
            if example.labels is None or not set(example.labels) <= names:
                return f"labels {example.labels!r} are not all in the codebook"
        elif example.score is None:
            return "a regression example needs a score"
        return None

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def is_regression(self) -> bool:
        return self.type is TaskType.REGRESSION


def round_robin(examples: Sequence[Example]) -> list[Example]:
    """Examples one label at a time in turn (labels in order of first appearance, each label's
    examples in their order), so that the first k cover as many labels as k can and the example
    just before the document is not always of the same label. A multi-label example's label is its
    set of labels; a regression example's, its score."""
    groups: dict[object, list[Example]] = {}
    for example in examples:
        label = example.label if example.label is not None else example.labels or example.score
        groups.setdefault(label, []).append(example)
    turns = [list(group) for group in groups.values()]
    ordered = []
    for depth in range(max(map(len, turns), default=0)):
        ordered += [group[depth] for group in turns if depth < len(group)]
    return ordered
