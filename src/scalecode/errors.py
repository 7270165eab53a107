"""Errors a user can act on.

Every error raised for bad input names what is at fault: the file, the key in a job file, the row or
document id in a data file, the plugin or backend. The CLI prints the message and exits non-zero
without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class ScalecodeError(Exception):
    """A problem with the user's input or set-up, with a message that says where it is."""


class ConfigError(ScalecodeError):
    """A job file (or task file) is invalid: names the file, the key and, where known, the line.

    One error can carry several problems, so a user fixes a job file in one pass, not one per run.
    """

    def __init__(self, path: str, key: str, message: str, line: int | None = None) -> None:
        self.path = path
        self.problems: list[tuple[str, str, int | None]] = [(key, message, line)]
        super().__init__(self._render())

    @classmethod
    def many(cls, path: str, problems: Sequence[tuple[str, str, int | None]]) -> ConfigError:
        error = cls(path, *problems[0])
        error.problems = list(problems)
        error.args = (error._render(),)
        return error

    @property
    def key(self) -> str:
        return self.problems[0][0]

    def _render(self) -> str:
        lines = []
        for key, message, line in self.problems:
            where = f"{self.path}:{line}" if line is not None else self.path
            lines.append(f"{where}: {key}: {message}" if key else f"{where}: {message}")
        return "\n".join(lines)


class DataError(ScalecodeError):
    """A data file is unusable as given: names the file and the rows, ids or column at fault."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class PluginError(ScalecodeError):
    """A plugin failed to import or registered something invalid: names the plugin."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class BackendError(ScalecodeError):
    """A backend cannot be built, loaded or trained as configured: names the backend."""

    def __init__(self, backend: str, message: str) -> None:
        self.backend = backend
        super().__init__(f"backend {backend!r}: {message}")


class StopRun(ScalecodeError):
    """A backend must stop the whole run cleanly (a spending cap reached), not code more documents.

    Raised from ``predict_batch``, it is not turned into error rows: the run stops, what is finished
    stays on disk, and running the same job again resumes.
    """


def describe_examples(items: Sequence[str], limit: int = 5) -> str:
    """Join the first few offending items for a message, saying how many more there are."""
    shown = ", ".join(items[:limit])
    rest = len(items) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown
