"""scalecode's own readers and metrics, registered through the same hooks a plugin uses."""

from __future__ import annotations

from scalecode.hookspecs import RegisterMetric, RegisterReader, hookimpl


@hookimpl
def register_readers(register: RegisterReader) -> None:
    from scalecode.readers import BUILTIN_READERS

    for reader in BUILTIN_READERS:
        register(reader)


@hookimpl
def register_metrics(register: RegisterMetric) -> None:
    # Imported here: scikit-learn takes a second to import, and listing backends needs none of it.
    from scalecode.scoring.metrics import BUILTIN_METRICS

    for metric in BUILTIN_METRICS:
        register(metric)
