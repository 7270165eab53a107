"""The job file: YAML with top-level ``task``, ``data``, ``backends``, ``evaluation`` and ``output``.

Everything is validated on the driver before any Ray work starts: the YAML, the structure, each
backend's name, task type, options and training options (against the backend's own pydantic
models), the metrics, and that the data files exist. Errors name the file, the key and the line.

Secrets never live in a job file: a value ``{"$env": "OPENAI_API_KEY"}`` is read from the environment
when the backend is built, and a literal value under a key that looks like a secret is rejected.
Paths are relative to the directory scalecode runs in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scalecode.backend import BackendParams
from scalecode.errors import ConfigError
from scalecode.plugins import BackendInfo, Plugins
from scalecode.scoring.ranking import DEFAULT_MIN_COVERAGE
from scalecode.task import Task

ENV_REF = "$env"
_SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd)", re.IGNORECASE)
# Values that carry a secret under any key: credentials in a URL, an API key, an Authorization header.
_SECRET_VALUE = re.compile(r"://[^/\s:@]+:[^/\s@]+@|\bsk-[A-Za-z0-9_-]{16,}|^\s*bearer\s+\S", re.IGNORECASE)
_BACKEND_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableConfig(_Strict):
    """A table of documents: a file or a folder of files."""

    path: str
    format: str | None = None  # a reader's name; by default chosen from the file suffix
    id_column: str = "id"
    text_column: str = "text"
    encoding: str = "utf-8"


class GoldConfig(TableConfig):
    """Human-coded documents: the table plus the code and, optionally, a grouping column."""

    label_column: str = "label"  # the label, the labels (multi-label) or the score (regression)
    group_column: str | None = None  # keep a speech/author/outlet on one side of every split
    label_separator: str | None = None  # multi-label codes given as one string, e.g. "economy;health"
    # Keep only the rows this SQL condition holds for, e.g. "party IN ('Democratic', 'Republican')".
    where: str | None = None
    sample: int | None = Field(None, ge=1)  # then keep this many rows, drawn with sample_seed
    sample_seed: int = 0

    @model_validator(mode="after")
    def _where_parses(self) -> GoldConfig:
        if self.where is not None:
            try:
                pl.sql_expr(self.where)
            except Exception as exc:  # polars raises several error types for bad SQL
                raise ValueError(f"where is not a SQL condition polars can read: {exc}") from None
        return self


class DataConfig(_Strict):
    gold: GoldConfig | None = None
    corpus: TableConfig | None = None


class BackendConfig(_Strict):
    """One competing coder: ``plugin`` is a registered backend (see ``scalecode backends``)."""

    name: str = Field(pattern=_BACKEND_NAME)
    plugin: str
    params: dict[str, Any] = Field(default_factory=dict)
    train: bool | dict[str, Any] | None = None  # None: train when the backend requires it


class BootstrapConfig(_Strict):
    n: int = Field(1000, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)


class LearningCurveConfig(_Strict):
    """Train at several sizes of the training split and score each on the same test split."""

    # Fractions of the training split (up to 1, which is all of it) or counts of documents (above 1).
    sizes: list[float] = Field(min_length=1)
    repeats: int = Field(1, ge=1)  # seeded samples per size
    backends: list[str] | None = None  # default: every backend the job trains

    @model_validator(mode="after")
    def _positive(self) -> LearningCurveConfig:
        if any(s <= 0 for s in self.sizes):
            raise ValueError("sizes must be positive: a fraction of the training split up to 1, or a count")
        uneven = [s for s in self.sizes if s > 1 and s != int(s)]
        if uneven:  # 2.5 documents: a typo, not a size
            raise ValueError(f"sizes above 1 are counts of documents, whole numbers; not {uneven[0]}")
        return self


class EvaluationConfig(_Strict):
    test_size: float = Field(0.3, gt=0, lt=1)  # share of the gold held out for evaluation
    seed: int = 42
    stratify: bool = True  # classification: keep label shares equal in both splits
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    metrics: list[str] | None = None  # default: every metric for the task type
    primary_metric: str | None = None  # ranks the comparison; default: the first metric
    # Share of the test split a backend must code to rank among (and be) the best: below it, its
    # figures cover only the documents it managed, so it ranks after every backend that meets it.
    min_coverage: float = DEFAULT_MIN_COVERAGE
    learning_curve: LearningCurveConfig | None = None

    @field_validator("min_coverage")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0 <= value <= 1:  # NaN too
            # 95 for 95% is the likely slip: say which scale the setting is on.
            raise ValueError(f"a share of the test split from 0 to 1 (0.95 for 95%), not {value:g}")
        return value


class OutputConfig(_Strict):
    dir: str
    corpus_backends: Literal["all", "best"] | list[str] = "all"  # which backends code the corpus


class JobConfig(_Strict):
    task: Task
    data: DataConfig
    backends: list[BackendConfig] = Field(min_length=1)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    output: OutputConfig

    @model_validator(mode="after")
    def _consistent(self) -> JobConfig:
        # Names become folder names, and macOS and Windows folders ignore case: Vader and vader would share.
        names = [b.name.casefold() for b in self.backends]
        repeated = sorted({b.name for b in self.backends if names.count(b.name.casefold()) > 1})
        if repeated:
            raise ValueError(f"backend names must be unique (ignoring case); repeated: {', '.join(repeated)}")
        if self.data.gold is None and self.data.corpus is None:
            raise ValueError("data needs 'gold' (to evaluate) or 'corpus' (to code), or both")
        selected = self.output.corpus_backends
        if isinstance(selected, list):
            unknown = [n for n in selected if n not in names]
            if unknown:
                raise ValueError(f"output.corpus_backends names unknown backends: {', '.join(unknown)}")
        if selected == "best" and self.data.gold is None:
            raise ValueError("output.corpus_backends 'best' needs data.gold to rank the backends")
        return self


@dataclass(frozen=True)
class ResolvedBackend:
    """A backend entry of the job, checked against the plugin that provides it."""

    config: BackendConfig
    info: BackendInfo
    params: BackendParams
    train: BackendParams | None  # training options, or None when this backend is not trained

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class Job:
    """A validated job file."""

    path: Path
    config: JobConfig
    backends: list[ResolvedBackend]

    @property
    def task(self) -> Task:
        return self.config.task


# --- YAML ---------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a job file with one is an error."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file safely (no arbitrary tags) and return the data and its node tree for line lookup."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(label, "", "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(label, "", f"not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(label, "", f"invalid YAML: {problem}", line) from None
    return data, node


def key_path(loc: Sequence[Any]) -> str:
    """('backends', 1, 'params', 'lexicon') -> 'backends[1].params.lexicon'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """The line of the deepest key along ``loc`` that exists in the YAML node tree."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _problems(
    error: ValidationError, node: yaml.Node | None, data: Any, prefix: Sequence[Any] = ()
) -> list[tuple[str, str, int | None]]:
    problems = []
    for item in error.errors():
        loc = _data_loc(data, item["loc"], missing=item["type"] == "missing")
        full = [*prefix, *loc]
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        problems.append((key_path(full), message, line_of(node, full)))
    return problems


def _data_loc(data: Any, loc: Sequence[Any], *, missing: bool) -> list[Any]:
    """Keep the parts of a pydantic error location that are keys of the data.

    pydantic adds the names of union members and validators ('bool', 'function-after[...]') to
    locations; a user needs the path through their file.
    """
    kept: list[Any] = []
    for i, part in enumerate(loc):
        in_mapping = isinstance(data, Mapping) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if in_mapping or in_list:
            kept.append(part)
            data = data[part]
        elif missing and i == len(loc) - 1 and isinstance(data, Mapping):
            kept.append(part)
    return kept


# --- secrets ------------------------------------------------------------------------------------


def _walk(value: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield loc, value
    if isinstance(value, Mapping) and not is_env_ref(value):
        for k, v in value.items():
            yield from _walk(v, (*loc, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, (*loc, i))


def is_env_ref(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {ENV_REF}


def literal_secrets(params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Where params hold a literal secret: under a key that names one (api_key, token, password),
    or a value that is one under any key (``https://user:pass@host``, ``sk-...``, ``Bearer ...``).
    Params are written to job.json and the manifest and printed by ``scalecode plan``."""
    found = []
    for loc, value in _walk(params):
        if not loc or not isinstance(value, str) or not value:
            continue
        if (isinstance(loc[-1], str) and _SECRET_KEY.search(loc[-1])) or _SECRET_VALUE.search(value):
            found.append(loc)
    return found


def resolve_env(params: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Replace every ``{"$env": NAME}`` with the variable's value; KeyError names a missing variable."""
    environ = os.environ if environ is None else environ
    if is_env_ref(params):
        name = params[ENV_REF]
        if name not in environ:
            raise KeyError(name)
        return environ[name]
    if isinstance(params, Mapping):
        return {k: resolve_env(v, environ) for k, v in params.items()}
    if isinstance(params, list):
        return [resolve_env(v, environ) for v in params]
    return params


def _resolve_with_locations(params: Mapping[str, Any]) -> tuple[Any, list[tuple[tuple[Any, ...], str]]]:
    missing = []
    for loc, value in _walk(params):
        if is_env_ref(value) and value[ENV_REF] not in os.environ:
            missing.append((loc, str(value[ENV_REF])))
    if missing:
        return None, missing
    return resolve_env(params), []


# --- loading ------------------------------------------------------------------------------------


def load_job(path: str | Path, plugins: Plugins) -> Job:
    """Read and validate a job file against the installed plugins; raise ConfigError naming every fault."""
    path = Path(path)
    label = str(path)
    data, node = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            label, "", "a job file is a mapping with keys task, data, backends, evaluation, output"
        )
    try:
        config = JobConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError.many(label, _problems(exc, node, data)) from None

    problems: list[tuple[str, str, int | None]] = []
    resolved: list[ResolvedBackend] = []
    for i, entry in enumerate(config.backends):
        backend = _resolve_backend(entry, i, config.task, plugins, node, problems)
        if backend is not None:
            resolved.append(backend)

    evaluation = config.evaluation
    problems.extend(_metric_problems(config.task, evaluation, plugins, node))
    for section in ("gold", "corpus"):
        table = getattr(config.data, section)
        if table is not None and "://" not in table.path and not Path(table.path).exists():
            where = ("data", section, "path")
            problems.append((key_path(where), f"{table.path} does not exist", line_of(node, where)))
    curve = evaluation.learning_curve
    if curve is not None:
        trained = {r.name for r in resolved if r.train is not None}
        curve_backends = curve.backends if curve.backends is not None else sorted(trained)
        untrained = [n for n in curve_backends if n not in trained]
        where = ("evaluation", "learning_curve", "backends")
        if untrained:
            problems.append(
                (key_path(where), f"not trained by this job: {', '.join(untrained)}", line_of(node, where))
            )
        elif not curve_backends:
            problems.append(
                (
                    "evaluation.learning_curve",
                    "no backend of this job is trained",
                    line_of(node, ("evaluation", "learning_curve")),
                )
            )
    if any(r.train is not None for r in resolved) and config.data.gold is None:
        problems.append(("data.gold", "training needs gold documents", line_of(node, ("data",))))
    if problems:
        raise ConfigError.many(label, problems)
    return Job(path=path, config=config, backends=resolved)


def _metric_problems(
    task: Task, evaluation: EvaluationConfig, plugins: Plugins, node: yaml.Node | None
) -> list[tuple[str, str, int | None]]:
    """Metrics the job names that this task cannot be scored by, or that could not rank it."""
    from scalecode.scoring import metrics_for

    # What scoring will compute: ordinal-only metrics apply to ordinal tasks alone.
    available = sorted(m.name for m in metrics_for(task, plugins.metrics))
    kind = f"an ordinal {task.type}" if task.ordinal else f"a {task.type}"
    problems = []

    def problem(key: str, message: str) -> None:
        loc = ("evaluation", key)
        problems.append((key_path(loc), message, line_of(node, loc)))

    if evaluation.metrics == []:
        problem("metrics", "list at least one metric, or leave metrics out to compute every one")
    for key, name in [("metrics", m) for m in evaluation.metrics or []] + [
        ("primary_metric", evaluation.primary_metric)
    ]:
        if name is not None and name not in available:
            problem(key, f"unknown metric {name!r} for {kind} task; available: {', '.join(available)}")
    primary = evaluation.primary_metric
    if evaluation.metrics and primary in available and primary not in evaluation.metrics:
        # Only the listed metrics are computed: backends could not be ranked by this one.
        problem("primary_metric", f"{primary!r} ranks the backends, so it must be in evaluation.metrics too")
    return problems


def _resolve_backend(
    entry: BackendConfig,
    index: int,
    task: Task,
    plugins: Plugins,
    node: yaml.Node | None,
    problems: list[tuple[str, str, int | None]],
) -> ResolvedBackend | None:
    base = ("backends", index)

    def problem(loc: tuple[Any, ...], message: str) -> None:
        full = (*base, *loc)
        problems.append((key_path(full), message, line_of(node, full)))

    try:
        info = plugins.backend(entry.plugin)
    except KeyError as exc:
        problem(("plugin",), str(exc.args[0]))
        return None
    cls = info.backend_class
    if task.type not in cls.task_types:
        supported = ", ".join(sorted(str(t) for t in cls.task_types))
        problem(("plugin",), f"backend {info.name!r} codes {supported}, not {task.type}")
        return None

    for loc in literal_secrets(entry.params):
        problem(("params", *loc), 'secrets come from the environment only: write {"$env": "VARIABLE_NAME"}')
    params_raw, missing = _resolve_with_locations(entry.params)
    for loc, variable in missing:
        problem(("params", *loc), f"environment variable {variable} is not set")
    if params_raw is None or any(p[0].startswith(key_path(base)) for p in problems):
        return None
    try:
        params = cls.Params.model_validate(params_raw)
    except ValidationError as exc:
        problems.extend(_problems(exc, node, params_raw, (*base, "params")))
        return None

    # ``train: {}`` (options all left at their defaults) asks for training as ``train: true`` does.
    wants_training = cls.requires_training if entry.train is None else entry.train is not False
    try:
        cls.check(task, params, train=wants_training)
    except (ValueError, OSError) as exc:
        problem(("params",), str(exc))
        return None
    train: BackendParams | None = None
    if wants_training:
        if not cls.trainable:
            problem(("train",), f"backend {info.name!r} cannot be trained")
            return None
        options = entry.train if isinstance(entry.train, dict) else {}
        try:
            train = cls.TrainParams.model_validate(options)
        except ValidationError as exc:
            problems.extend(_problems(exc, node, options, (*base, "train")))
            return None
    elif cls.requires_training:
        problem(("train",), f"backend {info.name!r} must be trained on the gold documents; set train: true")
        return None
    return ResolvedBackend(config=entry, info=info, params=params, train=train)
