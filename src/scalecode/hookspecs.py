"""The hooks a scalecode plugin can implement. Each is documented in docs/plugins.md.

A plugin is a module (or a single ``.py`` file in a plugins directory) with functions marked
``@hookimpl`` and named after a hook below. Registration must be cheap: no model loading and no
network; heavy work belongs in ``Backend.load()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from scalecode.backend import Backend
    from scalecode.readers import Reader
    from scalecode.scoring.base import Metric

PROJECT = "scalecode"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class RegisterBackend(Protocol):
    def __call__(
        self, backend_class: type[Backend], *, name: str | None = None, aliases: Sequence[str] = ()
    ) -> None: ...


class RegisterMetric(Protocol):
    def __call__(self, metric: Metric) -> None: ...


class RegisterReader(Protocol):
    def __call__(self, reader: Reader) -> None: ...


@hookspec
def register_backends(register: RegisterBackend) -> None:
    """Register Backend subclasses: ``register(MyBackend, name="mine", aliases=("m",))``.

    ``name`` defaults to the class's ``name`` attribute. A job file refers to a backend by this name
    (or an alias) in ``backends[].plugin``.
    """


@hookspec
def register_metrics(register: RegisterMetric) -> None:
    """Register extra scoring functions: ``register(Metric(name=..., func=..., task_types=...))``.

    A metric follows scikit-learn's convention ``func(y_true, y_pred) -> float`` on encoded codes
    (label indices, a 0/1 label matrix, or floats) and gets a bootstrap confidence interval like the
    built-in ones.
    """


@hookspec
def register_readers(register: RegisterReader) -> None:
    """Register a reader for another corpus format: ``register(Reader(name=..., suffixes=..., read=...))``.

    ``read(path, encoding)`` returns a polars DataFrame; the data section of a job selects it by file
    suffix or by ``format:``.
    """
