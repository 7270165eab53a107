"""scalecode: code (classify or score) millions of documents with competing coders, compared on gold."""

from scalecode.backend import (
    Backend,
    BackendParams,
    Estimate,
    FitConfig,
    FitReport,
    GoldSet,
    Predictions,
    Resources,
    operational,
)
from scalecode.hookspecs import hookimpl
from scalecode.task import Example, Label, ScoreRange, Task, TaskType

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendParams",
    "Estimate",
    "Example",
    "FitConfig",
    "FitReport",
    "GoldSet",
    "Label",
    "Predictions",
    "Resources",
    "ScoreRange",
    "Task",
    "TaskType",
    "__version__",
    "hookimpl",
    "operational",
]
