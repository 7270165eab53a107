"""The job file: YAML with top-level ``task``, ``data``, ``backends``, ``evaluation`` and ``output``.

Everything is validated on the driver before any Ray work starts: the YAML, the structure, each
backend's name, task type, options and training options (against the backend's own pydantic
models), the metrics, and that the data files exist. Errors name the file, the key and the line.

Secrets never live in a job file: a value ``{"$env": "OPENAI_API_KEY"}`` is read from the environment
when the backend is built, and a literal secret anywhere in the job (under a key that names one, or a
value that is one: a login or key in a URL, an Authorization value, an API key) is rejected, since
the job is copied to job.json and the manifest and printed by ``scalecode plan``.
Paths are relative to the directory scalecode runs in.
"""

from __future__ import annotations

import codecs
import difflib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scalecode.backend import BackendParams
from scalecode.errors import ConfigError, DataError
from scalecode.plugins import BackendInfo, Plugins
from scalecode.scoring.ranking import DEFAULT_MIN_COVERAGE
from scalecode.task import Task

ENV_REF = "$env"
# Keys whose literal string values are secrets, wherever in the job they are.
_SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|passwd|authorization)", re.IGNORECASE)
# A URL: userinfo and query parameters are only credentials in a string that has a scheme (a local
# folder named "me@work" is a path, not a login).
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)
# Userinfo: ``token@`` or ``user:password@`` before the host. A password may hold '/' (AWS secret
# keys do), so after a colon anything up to '@' counts, unless the colon starts a port
# (``host:8080/@user`` is a path on a host, a Mastodon profile say).
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^\s/?#@:]+|[^\s/?#@:]*:(?!\d*(?:[/?#\s]|$))[^\s@]*)@",
    re.IGNORECASE,
)
# Query parameters that carry a credential: API keys, OAuth tokens, signed-URL signatures (S3's
# X-Amz-Signature and X-Amz-Credential, GCS's X-Goog-Signature, Azure SAS's sig).
_SECRET_PARAM = re.compile(
    r"api_?key|token|secret|passw|signature|credential|^(key|sig|pwd|pass|auth)$|_key$", re.IGNORECASE
)
_QUERY_PAIR = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#\s]+)=(?P<value>[^&;#\s]*)")
# An Authorization header's value, the whole string: a scheme and one credential.
_AUTH_VALUE = re.compile(
    r"^\s*(?P<scheme>bearer|basic|token|digest|apikey|api-key|sharedkey)\s+(?P<credential>\S{6,})\s*$",
    re.IGNORECASE,
)
# An Authorization header written out in one string ("Authorization: Bearer ...").
_AUTH_HEADER = re.compile(
    r"(?P<head>\bauthorization\s*[:=]\s*(?P<scheme>bearer|basic|token|digest|apikey|api-key|sharedkey)\s+)"
    r"(?P<credential>[^\s\"',;]{6,})",
    re.IGNORECASE,
)
# Keys with a known form: OpenAI (sk-, with a digit: "sk-learn-pipeline" is a name), Hugging Face
# (hf_), GitHub (ghp_ ...), AWS access key ids.
_API_KEY = re.compile(
    r"\b(?:sk-(?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,}|gh[pousr]_[A-Za-z0-9]{36,}"
    r"|github_pat_[A-Za-z0-9_]{40,}|A[KS]IA[A-Z0-9]{16}\b)"
)
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
    sample_seed: int = Field(0, ge=0, le=2**64 - 1)  # polars takes an unsigned 64-bit seed

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

    # Fractions of the training split (up to 1, which is all of it) or counts of documents (above 1);
    # .inf and .nan are numbers to YAML, not sizes.
    sizes: list[Annotated[float, Field(allow_inf_nan=False)]] = Field(min_length=1)
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


# numpy's and scikit-learn's seeds are unsigned 32-bit integers.
MAX_SEED = 2**32 - 1


class EvaluationConfig(_Strict):
    test_size: float = Field(0.3, gt=0, lt=1)  # share of the gold held out for evaluation
    seed: int = 42  # from 0 to MAX_SEED
    stratify: bool = True  # classification: keep label shares equal in both splits
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    metrics: list[str] | None = None  # default: every metric for the task type
    primary_metric: str | None = None  # ranks the comparison; default: the first metric
    # Share of the test split a backend must code to rank among (and be) the best: below it, its
    # figures cover only the documents it managed, so it ranks after every backend that meets it.
    min_coverage: float = DEFAULT_MIN_COVERAGE
    learning_curve: LearningCurveConfig | None = None

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int) -> int:
        if not 0 <= value <= MAX_SEED:  # else the split would fail, blaming test_size
            raise ValueError(f"a seed from 0 to {MAX_SEED} (2**32 - 1), as numpy takes, not {value}")
        return value

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
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node, {}) > MOST_YAML_VALUES:
            # Checked before the data is built: building it is what takes the time and memory.
            raise ConfigError(
                label,
                "",
                f"it stands for over {MOST_YAML_VALUES:,} values, counting what its aliases repeat; a "
                "job needs far fewer (an alias of an alias of an alias multiplies)",
            )
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(label, "", f"invalid YAML: {problem}", line) from None
    return data, node


# A job file is tens to hundreds of values. Aliases repeat what an anchor names, and aliases of aliases
# multiply: a few hundred bytes can stand for billions of values, which every later walk over the job
# (the secret check, validation) would expand.
MOST_YAML_VALUES = 100_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for with every alias expanded; each node is counted once, as
    aliases share the node they name."""
    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = 1  # a node that holds itself (a recursive anchor) counts once here
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = size
    return size


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


def _looks_like_credential(token: str) -> bool:
    """A word after "Bearer" or "Basic" that is a credential, not prose ("Basic income", "Bearer bonds"):
    it holds a digit or a symbol, or mixes cases after its first letter, as keys and base64 do."""
    rest = token[1:]
    return not token.isalpha() or (rest.lower() != rest and rest.upper() != rest)


def _url_secrets(text: str) -> list[str]:
    """What credentials the URLs in ``text`` carry: userinfo, or query parameters named as secrets."""
    found = []
    if _USERINFO.search(text):
        found.append("credentials in a URL (user:password@ or token@ before the host)")
    for url in _URL.finditer(text):
        names = [
            m["name"] for m in _QUERY_PAIR.finditer(url[0]) if m["value"] and _is_secret_param(m["name"])
        ]
        found += [f"a secret in the URL's query parameter {name!r}" for name in names]
    return found


def _is_secret_param(name: str) -> bool:
    return bool(_SECRET_PARAM.search(name.replace("-", "_")))


def secret_kind(key: Any, value: str) -> str | None:
    """Why a string of a job file is a literal secret, or None: under a key that names one (api_key,
    token, password), or a value that is one under any key (a URL with a login or a key in its
    query, an Authorization value, an API key)."""
    if not value:
        return None
    if isinstance(key, str) and _SECRET_KEY.search(key):
        return f"a literal value under {key!r}"
    urls = _url_secrets(value)
    if urls:
        return urls[0]
    auth = _AUTH_VALUE.match(value) or _AUTH_HEADER.search(value)
    if auth is not None and _looks_like_credential(auth["credential"]):
        return f"an Authorization value ({auth['scheme']} ...)"
    if _API_KEY.search(value):
        return "an API key"
    return None


def find_secrets(data: Any) -> list[tuple[tuple[Any, ...], str]]:
    """Every literal secret anywhere in ``data`` (a whole job file): where it is and what it is.

    A job file is written to job.json and the manifest and echoed by ``scalecode plan``; no part of
    it (data paths, backend params, training options, the codebook) may hold a credential.
    """
    found = []
    for loc, value in _walk(data):
        if not isinstance(value, str):
            continue
        kind = secret_kind(loc[-1] if loc else None, value)
        if kind is not None:
            found.append((loc, kind))
    return found


def literal_secrets(params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Where ``params`` (or any part of a job) hold a literal secret; see ``secret_kind``."""
    return [loc for loc, _ in find_secrets(params)]


def secret_advice(loc: Sequence[Any]) -> str:
    """How to give what was found at ``loc`` instead: ``$env`` where the job reads it, else elsewhere."""
    if len(loc) > 2 and loc[0] == "backends" and loc[2] == "params":
        # Params are read with $env references resolved, at any depth.
        key = f"{loc[-1]}: " if isinstance(loc[-1], str) else ""
        return (
            f'secrets come from the environment only: write {key}{{"$env": "VARIABLE_NAME"}} in place '
            "of the whole value and set that variable"
        )
    if loc and loc[0] == "data":
        return (
            "secrets come from the environment only: a data path holds no credentials; cloud storage "
            "reads them from the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "GOOGLE_APPLICATION_CREDENTIALS, ...) or the provider's own config (~/.aws/credentials, "
            "gcloud auth), so write the bare location, e.g. s3://bucket/corpus/"
        )
    return (
        "secrets come from the environment only and this key cannot read one: remove it "
        "(the job is copied to job.json and the manifest and printed by scalecode plan)"
    )


def _secret_problems(data: Any, node: yaml.Node | None) -> list[tuple[str, str, int | None]]:
    """A problem for each literal secret in the job file; the messages never repeat the value."""
    return [
        (key_path(loc), f"holds {kind}; {secret_advice(loc)}", line_of(node, loc))
        for loc, kind in find_secrets(data)
    ]


def redact_text(text: str) -> str:
    """``text`` with every credential the checks above find replaced by ``***``.

    Load refuses such values; this keeps anything printed or written (job.json, the manifest,
    ``scalecode plan``, a backend's note naming its endpoint) free of one that came another way, from
    an environment variable say.
    """
    text = _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)
    text = _URL.sub(lambda url: _QUERY_PAIR.sub(_redact_pair, url[0]), text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['head']}***", text)
    auth = _AUTH_VALUE.match(text)
    if auth is not None and _looks_like_credential(auth["credential"]):
        text = f"{auth['scheme']} ***"
    return _API_KEY.sub(lambda m: f"{m[0][:3]}***", text)


def _redact_pair(pair: re.Match[str]) -> str:
    if pair["value"] and _is_secret_param(pair["name"]):
        return f"{pair['sep']}{pair['name']}=***"
    return pair[0]


def redact(data: Any, key: Any = None) -> Any:
    """``data`` (a job as JSON) with every literal secret redacted; ``$env`` references kept."""
    if isinstance(data, str):
        if data and isinstance(key, str) and _SECRET_KEY.search(key):
            return "***"
        return redact_text(data)
    if isinstance(data, Mapping) and not is_env_ref(data):
        return {k: redact(v, k) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact(v, key) for v in data]
    return data


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
    # First, on the file as written: a secret anywhere is named even where the structure is wrong too.
    problems = _secret_problems(data, node)
    try:
        config = JobConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError.many(label, [*problems, *_problems(exc, node, data)]) from None

    resolved: list[ResolvedBackend] = []
    for i, entry in enumerate(config.backends):
        backend = _resolve_backend(entry, i, config.task, plugins, node, problems)
        if backend is not None:
            resolved.append(backend)

    evaluation = config.evaluation
    problems.extend(_metric_problems(config.task, evaluation, plugins, node))
    problems.extend(_corpus_backend_problems(config, node))
    problems.extend(_data_problems(config.data, plugins, node))
    curve = evaluation.learning_curve
    if curve is not None:
        trained = {r.name for r in resolved if r.train is not None}
        curve_backends = curve.backends if curve.backends is not None else sorted(trained)
        untrained = [n for n in curve_backends if n not in trained]
        where = ("evaluation", "learning_curve", "backends")
        if curve.backends == []:
            problems.append(
                (
                    key_path(where),
                    "the list is empty; name the trained backends to draw curves for, or leave "
                    "backends out for every one the job trains",
                    line_of(node, where),
                )
            )
        elif untrained:
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
    if config.task.examples_from_gold and config.data.gold is None:
        examples = ("task", "examples_from_gold")
        problems.append(
            (
                key_path(examples),
                "examples are drawn from the gold training split, and this job has no data.gold; "
                "add it or write the examples into task.examples",
                line_of(node, examples),
            )
        )
    if problems:
        raise ConfigError.many(label, problems)
    return Job(path=path, config=config, backends=resolved)


def _corpus_backend_problems(config: JobConfig, node: yaml.Node | None) -> list[tuple[str, str, int | None]]:
    """Names in ``output.corpus_backends`` that are no backend of the job.

    The run picks the corpus backends by exact name, so a name that differs only in case would pass
    a check that ignored case and then code nothing; it is named with the spelling that matches.
    """
    selected = config.output.corpus_backends
    if not isinstance(selected, list):
        return []
    names = [b.name for b in config.backends]
    problems = []
    for i, name in enumerate(selected):
        if name in names:
            continue
        loc = ("output", "corpus_backends", i)
        same = [n for n in names if n.casefold() == name.casefold()]
        hint = (
            f"; did you mean {same[0]!r}? Names match with their case"
            if same
            else f"; the backends are {', '.join(names)}"
        )
        problems.append((key_path(loc), f"unknown backend {name!r}{hint}", line_of(node, loc)))
    return problems


def _data_problems(
    data: DataConfig, plugins: Plugins, node: yaml.Node | None
) -> list[tuple[str, str, int | None]]:
    """What ``plan`` and ``run`` would refuse about the data files, found from their first lines.

    The format is a reader's, the encoding one Python knows, the path exists, and the first file's
    columns hold those the job names: read from Parquet metadata, a CSV header or the first JSON
    lines, never the whole file. Locations behind a URI (s3://, gs://) are left to the run: listing a
    bucket is neither free nor possible without its credentials.
    """
    problems = []
    for section in ("gold", "corpus"):
        table: TableConfig | None = getattr(data, section)
        for key, message in _table_problems(table, section, plugins) if table is not None else []:
            loc = ("data", section, key)
            problems.append((key_path(loc), message, line_of(node, loc)))
    return problems


def _table_problems(table: TableConfig, section: str, plugins: Plugins) -> list[tuple[str, str]]:
    """Problems with one table, as (its key under ``data.<section>``, message)."""
    problems = []
    readers = sorted(r.name for r in plugins.readers)
    if table.format is not None and table.format not in readers:
        close = difflib.get_close_matches(table.format, readers, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(("format", f"unknown format {table.format!r}; known: {', '.join(readers)}{hint}"))
    encoding = _encoding_problem(table.encoding)
    if encoding is not None:
        problems.append(("encoding", encoding))
    if problems or "://" in table.path:
        return problems  # the columns cannot be read without a reader and an encoding
    if not Path(table.path).exists():
        return [("path", f"{table.path} does not exist")]
    try:
        missing = _missing_columns(table, section, plugins)
    except DataError as exc:  # no file of a known type, or one that cannot be read
        return [("path", str(exc))]
    return [missing] if missing is not None else []


def _encoding_problem(encoding: str) -> str | None:
    """Why Python cannot decode a file with ``encoding``, or None; the readers decode with Python's codecs."""
    try:
        known = codecs.lookup(encoding)
    except LookupError:
        return f"unknown encoding {encoding!r}; e.g. utf-8, latin-1, cp1252, utf-16"
    if not getattr(known, "_is_text_encoding", True):  # base64, zlib, rot13: bytes to bytes
        return f"{encoding!r} is not a text encoding; e.g. utf-8, latin-1, cp1252, utf-16"
    return None


def _missing_columns(table: TableConfig, section: str, plugins: Plugins) -> tuple[str, str] | None:
    """The first key naming a column the table's first file lacks, and the run's message for it.

    The files and their readers are found as the run finds them (``data_files`` for the gold,
    ``list_sources`` for the corpus) and the columns checked by the run's own check
    (``require_columns``), so validate refuses what the run would and with its words.
    """
    # Imported here: both import this module.
    from scalecode.data import data_files, reader_for, require_columns
    from scalecode.sources import list_sources, unfinished_line

    readers = plugins.readers
    if section == "gold":
        file = data_files(table.path, readers, table.format)[0]
        path, reader = str(file), reader_for(file, readers, table.format).name
    else:
        # The first file with a finished header: an empty one, or one whose header a writer has not
        # finished (unfinished_line), is read as no rows by the run, whatever its first bytes say.
        sources = [s for s in list_sources(table, readers) if s.size and not unfinished_line(table, s)]
        if not sources:
            return None  # a folder documents have yet to arrive in: no columns to check
        path, reader = sources[0].path, sources[0].reader
    names = column_names(Path(path), reader, table.encoding)
    if names is None:
        return None
    columns = {f"data.{section}.id_column": table.id_column, f"data.{section}.text_column": table.text_column}
    if isinstance(table, GoldConfig):
        columns[f"data.{section}.label_column"] = table.label_column
        if table.group_column:
            columns[f"data.{section}.group_column"] = table.group_column
    try:
        require_columns(pl.DataFrame(schema=dict.fromkeys(names, pl.String)), path, columns)
    except DataError as exc:
        first = next(key for key, column in columns.items() if column not in names)
        return first.rsplit(".", 1)[1], str(exc)
    return None


_HEAD_BYTES = 1 << 20  # of a text file, read for its columns


def column_names(path: Path, reader: str, encoding: str) -> list[str] | None:
    """A data file's column names, read cheaply; None where that needs the whole file.

    Parquet: the schema in its footer. CSV and TSV: the header row, parsed as the readers parse it.
    JSON Lines: the keys of the objects in its first megabyte, in case the first object leaves out
    a key that others have. A format from a plugin: None, as its reader reads whole files.
    """
    import csv
    import io
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    if reader not in ("parquet", "csv", "tsv", "jsonl"):
        return None
    try:
        if reader == "parquet":
            return list(pq.read_schema(path).names)
        # Decompressed as the run decompresses it: by the name's suffix, whatever its case.
        from scalecode.sources import compression_of

        with pa.input_stream(str(path), compression=compression_of(str(path))) as stream:
            head = stream.read(_HEAD_BYTES)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(str(path), f"cannot be read as {reader}: {exc}") from exc
    # utf-8-sig: a byte-order mark is not part of the first column's name; the readers drop it too.
    utf8 = encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig")
    text = head.decode("utf-8-sig" if utf8 else encoding, errors="replace")
    if reader == "jsonl":
        keys: dict[str, None] = {}
        lines = text.splitlines()
        for line in lines[:-1] if len(head) == _HEAD_BYTES else lines:  # the last may be cut short
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the run names a line that is not JSON; columns are what is checked here
            if isinstance(record, dict):
                keys.update(dict.fromkeys(record))
        return list(keys) if keys else None
    if reader == "tsv":  # unquoted, as read_tsv and the corpus reader read it
        rows = csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        rows = csv.reader(io.StringIO(text))
    if len(head) == _HEAD_BYTES and "\n" not in text:
        return None  # a header longer than the head read: not worth reading further to check it
    return next(rows, None)  # None: an empty file, which the run refuses with its own message


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

    # Literal secrets in params were reported by load_job, which checks the whole job for them.
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
