"""The plugin manager: entry points, a plugins directory, an allow-list, and what plugins register.

Plugins come from three places, in this order:

1. scalecode itself (built-in readers and metrics, through the same hooks as everyone else);
2. installed packages declaring an entry point in the ``scalecode`` group, which is how the
   backends shipped with scalecode (``plugins/``) are loaded too;
3. ``.py`` files in a plugins directory (``--plugins-dir`` or ``SCALECODE_PLUGINS_DIR``).

``SCALECODE_PLUGINS`` (comma-separated names; empty for none) restricts 2 and 3 to the plugins named.
A plugin that fails to import, implements a hook that does not exist, or registers something invalid
is recorded in ``Plugins.failures`` with its name, and the other plugins carry on.

Each call of ``load_plugins`` builds a fresh ``pluggy.PluginManager``, so runs and tests never share
registrations.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from pydantic import BaseModel

from scalecode import hookspecs
from scalecode.backend import Backend
from scalecode.errors import PluginError
from scalecode.readers import Reader
from scalecode.scoring.base import Metric
from scalecode.task import TaskType

ENTRY_POINT_GROUP = "scalecode"
ALLOW_ENV = "SCALECODE_PLUGINS"
PLUGINS_DIR_ENV = "SCALECODE_PLUGINS_DIR"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its name, version and where it came from."""

    name: str
    version: str
    source: str  # "built-in", "entry point" or the plugins directory


@dataclass(frozen=True)
class PluginFailure:
    """A plugin (or one thing it registered) that could not be used, and why."""

    plugin: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r}: {self.error}"


@dataclass(frozen=True)
class BackendInfo:
    """A registered backend: its name, class, aliases and the plugin that registered it."""

    name: str
    backend_class: type[Backend]
    plugin: PluginInfo
    aliases: tuple[str, ...] = ()


@dataclass
class Plugins:
    """A fresh plugin manager and what its plugins registered (collected on first use)."""

    manager: pluggy.PluginManager
    infos: dict[str, PluginInfo]
    failures: list[PluginFailure] = field(default_factory=list)
    _backends: dict[str, BackendInfo] | None = None
    _metrics: list[tuple[Metric, PluginInfo]] | None = None
    _readers: list[tuple[Reader, PluginInfo]] | None = None

    # --- backends ---------------------------------------------------------------------------

    @property
    def backends(self) -> dict[str, BackendInfo]:
        """Every backend by name and by alias."""
        if self._backends is None:
            self._backends = {}
            self._collect("register_backends", self._backend_registrar)
        return self._backends

    def list_backends(self) -> list[BackendInfo]:
        unique = {id(info): info for info in self.backends.values()}
        return sorted(unique.values(), key=lambda info: info.name)

    def backend(self, name: str) -> BackendInfo:
        """Look a backend up by name or alias; the error suggests near names and failed plugins."""
        if name in self.backends:
            return self.backends[name]
        message = f"no backend named {name!r}"
        close = difflib.get_close_matches(name, list(self.backends), n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        elif self.backends:
            message += f"; registered: {', '.join(sorted({i.name for i in self.backends.values()}))}"
        if self.failures:
            message += "; plugins that failed to load: " + "; ".join(str(f) for f in self.failures)
        raise KeyError(message)

    def _backend_registrar(self, plugin: PluginInfo) -> Callable[..., None]:
        def register(
            backend_class: type[Backend], *, name: str | None = None, aliases: Sequence[str] = ()
        ) -> None:
            backend_name = str(name or getattr(backend_class, "name", "") or "")
            problem = check_backend_class(backend_class, backend_name)
            if problem:
                label = backend_name or getattr(backend_class, "__name__", repr(backend_class))
                self.failures.append(PluginFailure(plugin.name, f"backend {label!r}: {problem}"))
                return
            assert self._backends is not None
            info = BackendInfo(backend_name, backend_class, plugin, tuple(aliases))
            for key in (backend_name, *aliases):
                if key in self._backends:
                    owner = self._backends[key].plugin.name
                    self.failures.append(
                        PluginFailure(plugin.name, f"backend name {key!r} is already registered by {owner!r}")
                    )
                    return
            for key in (backend_name, *aliases):
                self._backends[key] = info

        return register

    # --- metrics and readers ----------------------------------------------------------------

    @property
    def metrics(self) -> list[Metric]:
        """Built-in and plugin metrics, built-ins first."""
        if self._metrics is None:
            self._metrics = []
            self._collect("register_metrics", self._metric_registrar)
        return [metric for metric, _ in self._metrics]

    def _metric_registrar(self, plugin: PluginInfo) -> Callable[[Any], None]:
        def register(metric: Any) -> None:  # checked below: a plugin may pass anything
            assert self._metrics is not None
            if not isinstance(metric, Metric) or not metric.task_types:
                self.failures.append(
                    PluginFailure(plugin.name, f"{metric!r} is not a Metric with task types")
                )
                return
            for existing, owner in self._metrics:
                if existing.name == metric.name and existing.task_types & metric.task_types:
                    self.failures.append(
                        PluginFailure(
                            plugin.name, f"metric {metric.name!r} is already registered by {owner.name!r}"
                        )
                    )
                    return
            self._metrics.append((metric, plugin))

        return register

    @property
    def readers(self) -> list[Reader]:
        if self._readers is None:
            self._readers = []
            self._collect("register_readers", self._reader_registrar)
        return [reader for reader, _ in self._readers]

    def _reader_registrar(self, plugin: PluginInfo) -> Callable[[Any], None]:
        def register(reader: Any) -> None:  # checked below: a plugin may pass anything
            assert self._readers is not None
            if not isinstance(reader, Reader) or not callable(reader.read):
                self.failures.append(PluginFailure(plugin.name, f"{reader!r} is not a Reader"))
                return
            for existing, owner in self._readers:
                if existing.name == reader.name:
                    self.failures.append(
                        PluginFailure(
                            plugin.name, f"reader {reader.name!r} is already registered by {owner.name!r}"
                        )
                    )
                    return
            self._readers.append((reader, plugin))

        return register

    # --- shared -----------------------------------------------------------------------------

    def _collect(self, hook_name: str, registrar: Callable[[PluginInfo], Callable[..., None]]) -> None:
        """Call each plugin's implementation on its own, so one plugin's exception spares the rest."""
        caller = getattr(self.manager.hook, hook_name)
        # get_hookimpls() lists implementations in registration order (pluggy calls them in reverse).
        for impl in caller.get_hookimpls():
            info = self.infos[impl.plugin_name]
            try:
                impl.function(register=registrar(info))
            except Exception as exc:
                self.failures.append(PluginFailure(info.name, f"{hook_name} raised {exc!r}"))


def check_backend_class(backend_class: Any, name: str) -> str | None:
    """Why a class cannot be registered as a backend, or None when it can."""
    if not (inspect.isclass(backend_class) and issubclass(backend_class, Backend)):
        return "is not a subclass of scalecode.Backend"
    if not name or not _NAME.match(name):
        return f"needs a name of lower-case letters, digits, '-', '_' or '.', not {name!r}"
    types = backend_class.task_types
    if not types or not all(isinstance(t, TaskType) for t in types):
        return "task_types must be a non-empty set of TaskType"
    if inspect.isabstract(backend_class):
        missing = ", ".join(sorted(getattr(backend_class, "__abstractmethods__", ())))
        return f"does not implement {missing}"
    params: Any = backend_class.Params  # whatever the plugin set, checked here
    if not (inspect.isclass(params) and issubclass(params, BaseModel)):
        return "Params must be a pydantic model (subclass scalecode.BackendParams)"
    if params.model_config.get("extra") != "forbid":
        return "Params must forbid unknown keys (subclass scalecode.BackendParams)"
    if backend_class.trainable and backend_class.fit is Backend.fit:
        return "is marked trainable but does not implement fit()"
    if backend_class.requires_training and not backend_class.trainable:
        return "requires training but is not trainable"
    return None


def _allow_list(allow: Sequence[str] | None) -> set[str] | None:
    if allow is not None:
        return {a.strip() for a in allow if a.strip()}
    raw = os.environ.get(ALLOW_ENV)
    if raw is None:
        return None
    return {a.strip() for a in raw.split(",") if a.strip()}


def _import_file(path: Path) -> ModuleType:
    module_name = _module_name(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _module_name(path: Path) -> str:
    """The name a plugin file is imported under: the same in every process that loads the folder, so
    that Ray workers find the classes the driver hands them."""
    return f"scalecode_dir_plugin_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}"


def _dist_name(ep: metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else ep.name


def load_plugins(
    plugins_dir: str | Path | None = None,
    *,
    allow: Sequence[str] | None = None,
    entry_points: bool = True,
) -> Plugins:
    """Build a fresh plugin manager and load every allowed plugin into it.

    Args:
        plugins_dir: a directory of ``.py`` plugin files; defaults to ``$SCALECODE_PLUGINS_DIR``.
        allow: plugin names to load (entry-point name, distribution name or file stem); defaults to
            ``$SCALECODE_PLUGINS``; None loads everything.
        entry_points: load installed plugins (tests turn this off to load only a directory).
    """
    from scalecode import __version__, builtin

    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    failures: list[PluginFailure] = []
    allowed = _allow_list(allow)
    seen: set[str] = set()

    def add(module: ModuleType, info: PluginInfo, *aliases: str) -> None:
        seen.update((info.name, *aliases))
        if allowed is not None and not allowed & {info.name, *aliases}:
            return
        try:
            manager.register(module, name=info.name)
        except Exception as exc:
            failures.append(PluginFailure(info.name, f"cannot be registered: {exc}"))
            return
        infos[info.name] = info

    manager.register(builtin, name="scalecode")
    infos["scalecode"] = PluginInfo("scalecode", __version__, "built-in")

    if entry_points:
        found = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        modules_of: dict[str, set[str]] = {}  # a package found twice on the path lists its modules twice
        for ep in found:
            modules_of.setdefault(_dist_name(ep), set()).add(ep.name)
        for ep in found:
            dist = ep.dist
            name = dist.name if dist is not None else ep.name
            if dist is not None and len(modules_of[dist.name]) > 1:
                # A package may declare several modules; each is a plugin of its own, or all but one
                # would be dropped under the package's one name.
                name = f"{dist.name}:{ep.name}"
            aliases = (ep.name, _dist_name(ep))
            if name in infos or (allowed is not None and not allowed & {name, *aliases}):
                seen.update((name, *aliases))
                continue
            try:
                module = ep.load()
            except Exception as exc:
                seen.update((name, *aliases))
                failures.append(PluginFailure(name, f"failed to import {ep.value}: {exc!r}"))
                continue
            info = PluginInfo(name, dist.version if dist else "unknown", "entry point")
            add(module, info, *aliases)

    directory = plugins_dir or os.environ.get(PLUGINS_DIR_ENV)
    if directory:
        path = Path(directory)
        if not path.is_dir():
            failures.append(PluginFailure(str(path), "plugins directory does not exist"))
        else:
            modules: dict[str, Path] = {}
            for file in sorted(path.glob("*.py")):
                if allowed is not None and file.stem not in allowed:
                    seen.add(file.stem)
                    continue
                seen.add(file.stem)
                if file.stem in infos:
                    failures.append(
                        PluginFailure(
                            file.stem, f"{file} is not loaded: a plugin of that name is; rename the file"
                        )
                    )
                    continue
                if (other := modules.setdefault(_module_name(file), file)) != file:
                    failures.append(
                        PluginFailure(
                            file.stem,
                            f"{file} is not loaded: its name and {other.name}'s differ only in - and _; "
                            "rename one",
                        )
                    )
                    continue
                try:
                    module = _import_file(file)
                except (Exception, SystemExit) as exc:  # not Ctrl-C: the user stops the command
                    failures.append(PluginFailure(file.stem, f"failed to import {file}: {exc!r}"))
                    continue
                add(module, PluginInfo(file.stem, "file", str(path)))

    if allowed is not None:
        for name in sorted(allowed - seen):
            failures.append(PluginFailure(name, f"is in {ALLOW_ENV} but no such plugin is installed"))

    _drop_unknown_hooks(manager, infos, failures)
    manager.check_pending()
    return Plugins(manager=manager, infos=infos, failures=failures)


def _drop_unknown_hooks(
    manager: pluggy.PluginManager, infos: dict[str, PluginInfo], failures: list[PluginFailure]
) -> None:
    """Unregister plugins implementing hooks that do not exist (a misspelling), naming the hook."""
    known = [name for name in dir(hookspecs) if name.startswith("register_")]
    for hook_name, caller in list(vars(manager.hook).items()):
        if hook_name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if getattr(impl, "optionalhook", False):
                continue
            hint = difflib.get_close_matches(hook_name, known, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; hooks are {', '.join(known)}"
            failures.append(
                PluginFailure(impl.plugin_name, f"{hook_name!r} is not a scalecode hook{suggestion}")
            )
            if manager.is_registered(impl.plugin):
                manager.unregister(impl.plugin)
            infos.pop(impl.plugin_name, None)


def require_backend(plugins: Plugins, name: str) -> BackendInfo:
    """Like ``Plugins.backend`` but raising a PluginError for the CLI."""
    try:
        return plugins.backend(name)
    except KeyError as exc:
        raise PluginError(name, str(exc.args[0])) from None
