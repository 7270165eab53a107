"""``scalecode run``: validate, split, train, evaluate every backend on the same gold, code the corpus.

The run directory holds everything needed to rebuild any report without predicting again::

    manifest.json            what produced this run (job, versions, hashes, seeds, timings),
                             kept up to date as it goes; ``finished``, or ``stopped`` and why
    metrics.json             every backend's scores with confidence intervals
    comparison.md            the comparison table and per-backend details
    split.json               which gold ids are in the training and test splits
    models/<backend>/        trained state (no pickles) and fit.json
    predictions/gold/<backend>.parquet        predictions on the gold test split
    predictions/corpus/<backend>/<shard>.parquet

Running the same job over the same directory resumes: trained backends, gold predictions and
finished corpus shards are reused. A directory whose results were made from other inputs is refused:
another codebook, data settings, backend or split, other gold documents, or a changed lexicon or
model file. Scoring settings (bootstrap, metrics, learning-curve sizes) may change between runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import shutil
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from scalecode import __version__
from scalecode.backend import BackendParams, FitConfig, FitReport, GoldSet
from scalecode.config import Job, ResolvedBackend, redact, redact_text, resolve_env
from scalecode.corpus import CorpusSummary, code_corpus, write_durably
from scalecode.curves import CurveFailure, CurveRun, CurveSizeWarning, curve_seed, curve_sizes, summarise
from scalecode.data import CorpusInfo, inspect_corpus, load_gold
from scalecode.errors import ScalecodeError, StopRun
from scalecode.inference import BackendSpec, predict_texts, start_ray
from scalecode.manifest import (
    host,
    library_versions,
    made_with,
    now,
    plugin_records,
    table_hashes,
    version_changes,
    versions_of,
    write_json,
)
from scalecode.plugins import Plugins
from scalecode.predictions import RETRY, to_retry
from scalecode.readers import Reader
from scalecode.report import primary_metric, write_report
from scalecode.scoring import BackendScores, metrics_for, score_predictions
from scalecode.scoring.paired import PairedComparison
from scalecode.scoring.ranking import Best, best_backend, no_backend_qualifies, no_figure_note, without_figure
from scalecode.sources import is_uri
from scalecode.splits import draw_examples, leakage, split_gold, subsample_gold
from scalecode.task import Task, TaskType


@dataclass
class RunResult:
    out: Path
    scores: list[BackendScores] = field(default_factory=list)
    corpus: list[CorpusSummary] = field(default_factory=list)
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    paired: PairedComparison | None = None
    report: str = ""


def job_fingerprint(job: Job) -> str:
    """A hash of the job as validated: the same file content gives the same run directory identity."""
    text = json.dumps(job.config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def gold_fingerprint(gold: GoldSet) -> str:
    """A hash of the gold documents as read (ids, texts, codes, groups), whatever files hold them."""
    content = [
        gold.ids,
        gold.texts,
        [list(t) if isinstance(t, tuple) else t for t in gold.targets],
        gold.groups,
    ]
    return hashlib.sha256(json.dumps(content, default=str).encode()).hexdigest()


def run_identity(job: Job, gold: str | None, inputs: dict[str, list[str]]) -> dict[str, Any]:
    """What a run directory's models and predictions were made from, and must be made from again.

    The codebook, the data settings, the backends (options and the files they read: lexicons, model
    weights), how the gold is split, and the gold documents themselves. Not what only scores or
    reports them (bootstrap, metrics, learning-curve sizes, which backends code the corpus): those
    may change between runs over one directory. Settings are hashed in a normal form, so a job that
    says the same thing in other words (``train: true`` or ``train: {}``, an option left out or
    given at its default, ``./data/x.csv`` or ``data/x.csv``) resumes the directory.
    """
    return {
        "config": _made_from_hash(job),
        "gold": gold,
        "backend_inputs": inputs,
    }


def _made_from_hash(job: Job) -> str:
    """The hash of the settings a run's results come from, however the job spells them."""
    config = job.config.model_dump(mode="json")
    data = {section: _normal_table(table) for section, table in config["data"].items()}
    return _settings_hash(config, data, [_result_backend(backend) for backend in job.backends])


def _written_hashes(job: Job) -> tuple[str, str]:
    """The hashes earlier versions recorded for ``job``: its options as written less the operational
    ones, and before that with them. A directory they claimed resumes with the same job file."""
    config = job.config.model_dump(mode="json")
    written = config["backends"]
    without_operational = [
        _written_result_backend(entry, backend) for entry, backend in zip(written, job.backends, strict=True)
    ]
    return (
        _settings_hash(config, config["data"], without_operational),
        _settings_hash(config, config["data"], written),
    )


def _settings_hash(config: dict[str, Any], data: Any, backends: list[dict[str, Any]]) -> str:
    """The hash of a job's codebook, ``data`` and ``backends`` settings, and how its gold is split."""
    evaluation = config["evaluation"]
    made_from = {
        "task": config["task"],
        "data": data,
        "backends": backends,
        "split": {key: evaluation[key] for key in ("test_size", "seed", "stratify")},
    }
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()


def _result_backend(backend: ResolvedBackend) -> dict[str, Any]:
    """A backend of the job as what its results come from: its plugin by name (an alias is the same
    class), its options as validated, and its training options as validated, or None when it is
    not trained (``train: true`` and ``train: {}`` alike)."""
    train = backend.config.train
    return {
        "name": backend.name,
        "plugin": backend.info.name,
        "params": _result_options(backend.params, backend.config.params),
        "train": None
        if backend.train is None
        else _result_options(backend.train, train if isinstance(train, dict) else {}),
    }


def _result_options(options: BackendParams, written: Mapping[str, Any]) -> dict[str, Any]:
    """Validated ``options`` less those at their defaults and the operational ones (see
    ``scalecode.operational``); ``written`` are the same options as the job wrote them."""
    cls = type(options)
    # Validated again without the operational options: a validator may derive a result option from
    # one (the openai backend's mode: batch sets structured_output), and switching those must not
    # make another job. Where the rest does not validate alone, the options as validated serve.
    with contextlib.suppress(KeyError):  # a variable gone since load: the options as validated
        rest = cls.result_options(resolve_env(dict(written)))
        with contextlib.suppress(ValidationError):
            options = cls.model_validate(rest)
    # Left out at their defaults: one given at its default says what leaving it out says, and an
    # option a plugin adds later (at a default that keeps what it did) leaves identities alone.
    values = options.model_dump(mode="json", exclude_defaults=True)
    # A value read from the environment counts by its reference: the identity is not the secret's,
    # and a rotated key or token is the same job.
    values.update({key: value for key, value in written.items() if _reads_environment(value)})
    return cls.result_options(values)


def _reads_environment(value: Any) -> bool:
    """Whether ``value`` holds an ``{"$env": NAME}`` reference, at any depth."""
    try:
        resolve_env(value, {})
    except KeyError:  # no variable is set in an empty environment: a reference was met
        return True
    return False


def _normal_table(table: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if table is None else {**table, "path": _normal_path(table["path"])}


def _normal_path(path: str) -> str:
    """``path`` spelled plainly (no ``./``, ``//``, ``x/..`` or trailing ``/``), lexically: links are
    not followed, as the job names a path, not what it points to today. A URI is left as written:
    in an object store's key those are characters of the name, and ``a//b`` names another object."""
    return path if is_uri(path) else posixpath.normpath(path)  # the same on every system


def _written_result_backend(entry: dict[str, Any], backend: ResolvedBackend) -> dict[str, Any]:
    """A backend entry as the job wrote it, less its operational options (as earlier versions hashed it)."""
    cls = backend.info.backend_class
    entry = {**entry, "params": cls.Params.result_options(entry["params"])}
    if isinstance(entry["train"], dict):
        entry["train"] = cls.TrainParams.result_options(entry["train"])
    return entry


def _claim(out: Path, job: Job, identity: dict[str, Any]) -> None:
    """Make ``out`` this job's run directory, or refuse one whose results came from other inputs.

    The corpus may grow between runs (that is what a schedule is for); the gold, the job's coding
    settings and the files backends read may not: trained models, the split and the test
    predictions kept here were made from them.
    """
    marker = out / "job.json"
    # Redacted though load refuses literal secrets: job.json must never hold one, however it came.
    record = {
        "job_file": str(job.path),
        "job": redact(job.config.model_dump(mode="json")),
        "identity": identity,
    }
    if not marker.exists():
        write_json(marker, record)
        return
    previous = json.loads(marker.read_text(encoding="utf-8"))
    before = previous.get("identity")
    if before is None:  # written by a version that hashed the whole job file
        if previous.get("fingerprint") != job_fingerprint(job):
            raise ScalecodeError(_refusal(out, f"a different job ({previous.get('job_file')})"))
    elif before["config"] not in (identity["config"], *_written_hashes(job)):
        raise ScalecodeError(_refusal(out, f"a different job ({previous.get('job_file')})"))
    elif before.get("gold") is not None and before["gold"] != identity["gold"]:
        raise ScalecodeError(
            _refusal(out, "other gold documents (a text, a code, an id or a group has changed since)")
        )
    else:
        changed = sorted(
            name
            for name, prints in identity["backend_inputs"].items()
            if name in before.get("backend_inputs", {}) and before["backend_inputs"][name] != prints
        )
        if changed:
            raise ScalecodeError(
                _refusal(
                    out, f"other files read by {', '.join(changed)} (a lexicon or model has changed since)"
                )
            )
    write_json(marker, record)  # settings that only score or report may have changed


def _refusal(out: Path, what: str) -> str:
    return (
        f"{out} holds a run made from {what}; its trained models, split and predictions came from "
        "those. Choose another output.dir (or --output) or delete that directory"
    )


def _lock(out: Path) -> IO[bytes]:
    """Hold the run directory for this process, or fail at once if another run holds it.

    Two runs over one directory (a scheduled run that starts while the last is still going) would
    both code the new documents. The lock dies with the process, however it ends.
    """
    import fcntl

    handle = (out / ".lock").open("wb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ScalecodeError(
            f"{out} is in use by another scalecode run; try again when it has finished"
        ) from None
    return handle


def _write_whole(table: pa.Table, path: Path) -> None:
    """Write a Parquet file that is whole or absent, even after a power cut: a gold predictions file
    cut short would be taken as there and fail every later run that reads it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_durably(table, path)


def _one_line(exc: BaseException, limit: int = 500) -> str:
    """An exception as one line for a warning and the report: its type and its message's first line."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label_counts(gold: GoldSet) -> dict[str, int] | None:
    """Documents of each label in ``gold`` (labels with none left out); None for scores."""
    if gold.task.type is TaskType.CLASSIFICATION:
        counts = Counter(gold.targets)
    elif gold.task.type is TaskType.MULTILABEL:
        counts = Counter(label for labels in gold.targets for label in labels)
    else:
        return None
    return {label: counts[label] for label in gold.task.label_names if counts[label]}


def errors_to_retry(frame: pl.DataFrame) -> int:
    """Error rows the backend expects to pass: the next run codes their documents again."""
    return int(frame[RETRY].fill_null(False).sum()) if RETRY in frame.columns else 0


def spending(frame: pl.DataFrame) -> dict[str, float]:
    """Tokens, dollars and cache hits of a predictions table from a backend that reports them."""
    out: dict[str, float] = {}
    for column in ("input_tokens", "output_tokens", "cost_usd"):
        if column in frame.columns and frame[column].null_count() < len(frame):
            out[column] = float(frame[column].sum())
    if "cached" in frame.columns:
        out["cached_documents"] = float(frame["cached"].fill_null(False).sum())
    return out


def split_job_gold(
    job: Job, readers: Sequence[Reader], out: Path | None = None
) -> tuple[GoldSet, GoldSet, GoldSet, Task]:
    """The job's gold, its seeded train and test splits, and the codebook with any examples drawn
    from the training split (``task.examples_from_gold``).

    ``out``: the run directory. The split its split.json records is kept, so that the models and
    predictions it holds stay those of its split whatever version of scalecode runs it again. A
    directory claimed by a version that split grouped classification gold one way (one fold of
    round(1/test_size)) and left no split.json is split that way; a new one as near ``test_size`` as
    the groups allow.
    """
    config = job.config
    assert config.data.gold is not None
    gold = load_gold(config.data.gold, job.task, readers)
    recorded = recorded_split(gold, out / "split.json") if out is not None else None
    if recorded is not None:
        train, test = recorded
    else:
        train, test = split_gold(
            gold,
            test_size=config.evaluation.test_size,
            seed=config.evaluation.seed,
            stratify=config.evaluation.stratify,
            match_share=out is None or not (out / "job.json").is_file(),
        )
    task = job.task
    if task.examples_from_gold:
        drawn = draw_examples(train, task.examples_from_gold, seed=config.evaluation.seed)
        task = task.model_copy(update={"examples": (*task.examples, *drawn)})
    return gold, train, test, task


def recorded_split(gold: GoldSet, path: Path) -> tuple[GoldSet, GoldSet] | None:
    """(train, test) as ``path`` (a run's split.json) records them, where it records a split of exactly
    these gold documents; else None (no file, or other gold, which the run directory's identity then
    refuses)."""
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text(encoding="utf-8"))
    train_ids, test_ids = recorded.get("train"), recorded.get("test")
    if not isinstance(train_ids, list) or not isinstance(test_ids, list):
        return None
    where = {doc_id: i for i, doc_id in enumerate(gold.ids)}
    ids = [*train_ids, *test_ids]
    if len(ids) != len(where) or set(ids) != set(where):
        return None
    return gold.subset([where[i] for i in train_ids]), gold.subset([where[i] for i in test_ids])


def spec_for(
    backend: ResolvedBackend,
    task: Task,
    state_dir: Path | None,
    plugins_dir: str | None,
    allow: tuple[str, ...] | None,
    work_dir: Path | None = None,
) -> BackendSpec:
    return BackendSpec(
        name=backend.name,
        plugin=backend.config.plugin,
        params=backend.config.params,
        task=task.model_dump(mode="json"),
        state_dir=str(state_dir.resolve()) if state_dir is not None else None,
        plugins_dir=plugins_dir,
        allow=allow,
        work_dir=str(work_dir.resolve()) if work_dir is not None else None,
    )


class Runner:
    """One run of one job; ``echo`` prints progress lines (stderr in the CLI)."""

    def __init__(
        self,
        job: Job,
        plugins: Plugins,
        *,
        out: Path | None = None,
        plugins_dir: str | None = None,
        allow: tuple[str, ...] | None = None,
        num_cpus: int | None = None,
        echo: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
        progress: bool = True,
    ) -> None:
        self.job = job
        self.plugins = plugins
        self.out = Path(out or job.config.output.dir)
        self.plugins_dir = plugins_dir
        self.allow = allow
        self.num_cpus = num_cpus
        self.echo = echo
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.manifest: dict[str, Any] = {}
        self.task = job.task  # the codebook handed to backends, with any examples drawn from the gold
        self._lock: IO[bytes] | None = None  # held while running (see _lock)
        self._made_with: dict[str, str] = {}  # the versions that made what the directory keeps

    def _warn_of_upgrades(self) -> None:
        """Say so where scalecode, a backend's plugin or a library that shapes results has another
        version than in this directory's last run: what is kept here is reused as it is."""
        now_installed = versions_of(
            {
                "scalecode": __version__,
                "libraries": library_versions(),
                "backends": {
                    b.name: {"plugin_package": b.info.plugin.name, "plugin_version": b.info.plugin.version}
                    for b in self.job.backends
                },
            }
        )
        # Until this run finishes, what the directory keeps was made as its manifest says; a run that
        # stops part way must not replace that record with versions that made little or nothing.
        self._made_with = made_with(self.out / "manifest.json") or now_installed
        changes = version_changes(self.out / "manifest.json", now_installed)
        if changes:
            self.echo(
                f"warning: versions changed since this directory's last run: {', '.join(changes)}. "
                "Trained models, gold predictions and coded corpus rows kept here are reused as they "
                "are; to have all of them from the versions installed now, use another output.dir "
                "(or delete what should be made again)"
            )

    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 3)

    def _save_manifest(self) -> None:
        """Write the manifest as it stands. It is written when the run has claimed its directory and
        again after each stage, so that a run stopped part way (a budget, an error, a kill) still
        says what produced what it left; ``finished`` or ``stopped`` says how it ended."""
        if self.manifest:
            write_json(self.out / "manifest.json", self.manifest)

    def _record_stop(self, exc: BaseException) -> None:
        if not self.manifest or "finished" in self.manifest:
            return
        self.manifest["stopped"] = {"at": now(), "reason": redact_text(_one_line(exc))}
        with contextlib.suppress(OSError):  # the reason the run stopped matters more than this record
            self._save_manifest()

    def run(self) -> RunResult:
        try:
            return self._run()
        except BaseException as exc:  # a kill by Ctrl-C included: the record says the run stopped
            self._record_stop(exc)
            raise
        finally:
            if self._lock is not None:
                self._lock.close()  # releases the run directory
                self._lock = None

    def _run(self) -> RunResult:
        started = time.perf_counter()
        self.manifest = {}  # this run's, once it holds the directory: never an earlier call's
        job, config = self.job, self.job.config
        readers = self.plugins.readers
        fingerprint = job_fingerprint(job)

        # Everything that can be checked without Ray is checked before Ray starts.
        gold = train = test = None
        corpus: CorpusInfo | None = None
        step = time.perf_counter()
        if config.data.gold is not None:
            gold, train, test, self.task = split_job_gold(job, readers, self.out)
            self.echo(f"gold: {len(gold)} documents, {len(train)} to train, {len(test)} to evaluate")
            for warning in leakage(train, test, self.task.examples):
                self.echo(f"warning: {warning}")
            if config.evaluation.learning_curve is not None:
                # Sizes that come to no document are refused now, not after the main training; the
                # warning for a size above the split comes once, with the curve.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", CurveSizeWarning)
                    curve_sizes(config.evaluation.learning_curve.sizes, len(train))
        if config.data.corpus is not None:
            corpus = inspect_corpus(config.data.corpus, readers)
            self.echo(f"corpus: {corpus.n_documents} documents in {len(corpus.files)} file(s)")
            if not corpus.files:  # a folder that documents arrive in, before the first has
                self.echo(f"warning: {config.data.corpus.path} holds no files to read yet: nothing to code")
            for name in corpus.unfinished:
                self.echo(
                    f"warning: {name} ends in a line without a newline that is no whole row (a writer "
                    "still at it?): read if finished by the time it is read, else left for the next "
                    "run; if the file is complete, end that line with a newline"
                )
        self._timed("read_data", step)

        prints = {b.name: self._fingerprint(b, self._spec(b, None)) for b in job.backends}
        # The hashes only, not the paths they are keyed by: a project moved or mounted elsewhere
        # reads the same files. A fingerprint that failed is unknown, not compared.
        inputs = {name: sorted(p.values()) for name, p in prints.items() if "error" not in p}
        if self.out.exists() and not self.out.is_dir():
            raise ScalecodeError(
                f"the run directory {self.out} is a file; give a folder (output.dir or --output)"
            )
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.out)  # before the claim: two jobs starting at once on one new directory
        _claim(self.out, job, run_identity(job, gold_fingerprint(gold) if gold is not None else None, inputs))
        self._warn_of_upgrades()
        self.manifest = {
            "scalecode": __version__,
            "started": now(),
            "command": sys.argv,
            "job_file": str(job.path),
            "job_fingerprint": fingerprint,
            "job": redact(config.model_dump(mode="json")),  # as job.json: never a credential
            "plugins": plugin_records(self.plugins),
            "libraries": library_versions(),
            "made_with": self._made_with,  # replaced by this run's versions when it finishes
            "host": host(),
            "seeds": {
                "split": config.evaluation.seed,
                "bootstrap": config.evaluation.seed,
                "fit": config.evaluation.seed,
            },
            "data": {},
            "backends": {},
            "timings": self.timings,
        }
        if config.data.gold is not None and gold is not None and train is not None and test is not None:
            self.manifest["data"]["gold"] = {
                "files": table_hashes(config.data.gold.path, readers, config.data.gold.format),
                "documents": len(gold),
                "train": len(train),
                "test": len(test),
            }
            write_json(self.out / "split.json", {"train": train.ids, "test": test.ids})
            self.manifest["examples"] = [e.id for e in self.task.examples]
        if config.data.corpus is not None and corpus is not None:
            # Size, modification time and version, not a content hash: a corpus may be terabytes
            # in a bucket. The version is what names the shards coded from a file.
            self.manifest["data"]["corpus"] = {
                "files": {
                    f.relative: {
                        "size": f.size,
                        "mtime_ns": f.mtime_ns,
                        "version": f.version,
                        "rows": corpus.rows[f.relative],
                    }
                    for f in corpus.files
                },
                "documents": corpus.n_documents,
            }

        self._save_manifest()

        step = time.perf_counter()
        start_ray(self.num_cpus)
        self._timed("start_ray", step)

        specs: dict[str, BackendSpec] = {}
        fits: dict[str, FitReport] = {}
        for backend in job.backends:
            state_dir = None
            if backend.train is not None:
                assert train is not None
                state_dir = self.out / "models" / backend.name
                fits[backend.name] = self._fit(
                    backend, state_dir, train, self.out / "checkpoints" / backend.name
                )
            specs[backend.name] = self._spec(backend, state_dir)
            self.manifest["backends"][backend.name] = {
                "plugin": backend.info.name,
                "plugin_package": backend.info.plugin.name,
                "plugin_version": backend.info.plugin.version,
                "params": redact(backend.config.params),
                "trained": backend.train is not None,
                "fit": asdict(fits[backend.name]) if backend.name in fits else None,
                "fingerprint": self._fingerprint(backend, specs[backend.name]),
            }
            self._save_manifest()

        result = RunResult(out=self.out)
        details: dict[str, dict[str, Any]] = {}
        if test is not None:
            step = time.perf_counter()
            for backend in job.backends:
                path = self.out / "predictions" / "gold" / f"{backend.name}.parquet"
                scores, rate = self._evaluate(backend, specs[backend.name], test, path)
                result.scores.append(scores)
                details.setdefault(backend.name, {})["docs_per_second"] = rate
                frame = pl.read_parquet(path)
                spent = spending(frame)
                if spent:
                    details[backend.name]["spending"] = spent
                if retry := errors_to_retry(frame):
                    details[backend.name]["errors_to_retry"] = retry
            primary = primary_metric(job, self.plugins)
            if unranked := without_figure(result.scores, primary):
                self.echo(f"warning: {no_figure_note(unranked, len(result.scores), primary)}")
            result.paired = self._paired(result.scores, test)
            self._timed("evaluate", step)
            self._save_manifest()
            for name, fit in fits.items():
                details.setdefault(name, {})["fit_seconds"] = fit.seconds
                details[name]["fit"] = asdict(fit)

        def report(summaries: list[CorpusSummary]) -> str:
            return write_report(
                self.out,
                job,
                self.plugins,
                result.scores,
                details,
                summaries,
                self.timings,
                result.curves,
                result.paired,
            )

        if train is not None and test is not None and config.evaluation.learning_curve is not None:
            if result.scores:
                # The comparison is whole before the curves train (each point a training run, each
                # perhaps long): a run stopped while training them still leaves its metrics.json
                # and comparison.md.
                report([])
            step = time.perf_counter()
            result.curves = self._learning_curves(train, test)
            self._timed("learning_curves", step)
            self._save_manifest()

        if result.scores and corpus is not None:
            # The comparison is whole before the corpus starts: a run that a budget or a kill stops
            # while coding the corpus still leaves its metrics.json and comparison.md.
            report([])

        if corpus is not None and config.data.corpus is not None:
            step = time.perf_counter()
            chosen = self._corpus_backends(result.scores)
            result.corpus = self._code_corpus(chosen, specs, corpus)
            self._timed("code_corpus", step)

        self._timed("total", started)
        self.manifest["corpus"] = [asdict(s) for s in result.corpus]
        result.report = report(result.corpus)
        self.manifest["finished"] = now()
        self.manifest["made_with"] = versions_of(self.manifest)
        self._save_manifest()
        return result

    def _fingerprint(self, backend: ResolvedBackend, spec: BackendSpec) -> dict[str, str]:
        try:
            return spec.build().fingerprint()
        except Exception as exc:  # a fingerprint is a record, not a reason to stop
            return {"error": repr(exc)}

    def _spec(self, backend: ResolvedBackend, state_dir: Path | None) -> BackendSpec:
        work_dir = self.out / "work" / backend.name
        return spec_for(backend, self.task, state_dir, self.plugins_dir, self.allow, work_dir)

    def _fit(
        self,
        backend: ResolvedBackend,
        state_dir: Path,
        train: GoldSet,
        checkpoints: Path,
        seed: int | None = None,
    ) -> FitReport:
        """Train into ``state_dir`` (whole or not at all); an existing trained state is reused.

        ``seed`` (default: the job's) seeds the training itself: weights, order, dropout.
        """
        record = state_dir / "fit.json"
        if record.exists():
            self.echo(f"{backend.name}: trained state found in {state_dir}, not training again")
            return FitReport(**json.loads(record.read_text(encoding="utf-8")))
        self.echo(f"{backend.name}: training on {len(train)} gold documents")
        # Not loaded: fit() loads what it needs. A model backend trains on Ray Train's workers, and
        # its weights loaded here as well (the driver, perhaps a head node without a GPU) would only
        # take memory.
        instance = self._spec(backend, None).build()
        assert backend.train is not None
        scratch = state_dir.with_name(f".{state_dir.name}.partial")
        if scratch.exists():
            shutil.rmtree(scratch)
        config = FitConfig(
            output_dir=scratch,
            seed=self.job.config.evaluation.seed if seed is None else seed,
            options=backend.train,
            checkpoint_dir=checkpoints,
        )
        report = instance.fit(train, None, config)
        # Backends name files in the folder they were given; the folder is renamed below.
        report.notes = [note.replace(str(scratch), str(state_dir)) for note in report.notes]
        scratch.mkdir(parents=True, exist_ok=True)
        write_json(scratch / "fit.json", asdict(report))
        if state_dir.exists():
            shutil.rmtree(state_dir)
        scratch.rename(state_dir)  # trained state appears whole or not at all
        # The checkpoints only served to resume this training, which is over: an encoder's are its
        # weights and optimizer state twice over, a learning curve's one set per size and repeat.
        shutil.rmtree(checkpoints, ignore_errors=True)
        return report

    def _evaluate(
        self, backend: ResolvedBackend, spec: BackendSpec, test: GoldSet, path: Path
    ) -> tuple[BackendScores, float | None]:
        """Code the test split once (stored at ``path``), score it; also the documents per second."""
        config = self.job.config
        if not path.exists():
            self.echo(f"{backend.name}: coding {len(test)} gold test documents")
            _write_whole(predict_texts(spec, spec.build().resources(), test.ids, test.texts), path)
        else:
            self._retry_gold(backend, spec, test, path)
        frame = pl.read_parquet(path)
        if pending := errors_to_retry(frame):
            self.echo(
                f"{backend.name}: {pending} gold test document(s) failed for reasons that may pass; "
                "the next run codes them again"
            )
        latency = float(frame["latency_s"].sum())
        metrics = metrics_for(self.job.task, self.plugins.metrics, config.evaluation.metrics)
        scores = score_predictions(
            frame,
            test,
            metrics,
            backend=backend.name,
            n_boot=config.evaluation.bootstrap.n,
            confidence=config.evaluation.bootstrap.confidence,
            seed=config.evaluation.seed,
        )
        return scores, (len(frame) / latency if latency > 0 else None)

    def _paired(self, scores: list[BackendScores], test: GoldSet) -> PairedComparison | None:
        """Every backend against the best ranked, on the test documents both coded."""
        if len(scores) < 2:
            return None
        from scalecode.scoring.paired import paired_differences

        evaluation = self.job.config.evaluation
        best = self._best(scores, "paired differences are against it").backend
        frames = {
            s.backend: pl.read_parquet(self.out / "predictions" / "gold" / f"{s.backend}.parquet")
            for s in scores
        }
        return paired_differences(
            frames,
            test,
            metrics_for(self.job.task, self.plugins.metrics, evaluation.metrics),
            baseline=best,
            n_boot=evaluation.bootstrap.n,
            confidence=evaluation.bootstrap.confidence,
            seed=evaluation.seed,
        )

    def _retry_gold(self, backend: ResolvedBackend, spec: BackendSpec, test: GoldSet, path: Path) -> None:
        """Code again the gold documents whose errors the backend expected to pass (an API down)."""
        table = pq.read_table(path)
        again = to_retry(table)
        if not pc.any(again).as_py():
            return
        retry = set(table.filter(again).column("id").to_pylist())
        rows = [i for i, doc in enumerate(test.ids) if doc in retry]
        self.echo(
            f"{backend.name}: coding {len(rows)} gold test documents again (their errors may have passed)"
        )
        redone = predict_texts(
            spec, spec.build().resources(), [test.ids[i] for i in rows], [test.texts[i] for i in rows]
        )
        kept = table.filter(pc.invert(again))
        _write_whole(pa.concat_tables([kept, redone], promote_options="permissive"), path)

    def _learning_curves(self, train: GoldSet, test: GoldSet) -> dict[str, list[dict[str, Any]]]:
        """Train each chosen backend at each size, ``repeats`` times, and score it on the test split.

        A run that fails (a sample too small for the backend's settings, say) is recorded in its
        point's ``failed``, with a warning naming the backend, size and repeat; the others go on.
        """
        evaluation = self.job.config.evaluation
        curve = evaluation.learning_curve
        assert curve is not None
        chosen = (
            curve.backends
            if curve.backends is not None
            else [b.name for b in self.job.backends if b.train is not None]
        )
        metrics = metrics_for(self.job.task, self.plugins.metrics, evaluation.metrics)
        curves = {}
        for backend in self.job.backends:
            if backend.name not in chosen:
                continue
            runs: list[CurveRun] = []
            failures: list[CurveFailure] = []
            for size in curve_sizes(curve.sizes, len(train)):
                for repeat in range(curve.repeats):
                    seed = curve_seed(evaluation.seed, size, repeat)
                    sample = subsample_gold(train, size, seed=seed, stratify=evaluation.stratify)
                    tag = f"n{size}-r{repeat}"
                    state_dir = self.out / "curves" / backend.name / tag
                    stage = "training"
                    try:
                        # Each repeat its own seed for training too: at the full size, where every
                        # repeat holds the same documents, repeats would otherwise be copies.
                        report = self._fit(
                            backend,
                            state_dir,
                            sample,
                            self.out / "checkpoints" / f"{backend.name}-{tag}",
                            seed,
                        )
                        stage = "coding the test split"
                        path = self.out / "predictions" / "curves" / backend.name / f"{tag}.parquet"
                        scores, _ = self._evaluate(backend, self._spec(backend, state_dir), test, path)
                    except StopRun:  # a backend's word to stop the whole run (a spending cap)
                        raise
                    except Exception as exc:  # one run of the curve, not a reason to lose the others
                        failure = CurveFailure(size, repeat, seed, _one_line(exc), stage)
                        failures.append(failure)
                        self.echo(
                            f"warning: learning curve of {backend.name}: {stage} failed at {size} "
                            f"documents, repeat {repeat} (seed {seed}): {failure.error}; that run is "
                            "left out of the curve"
                        )
                        continue
                    labels = _label_counts(sample)
                    runs.append(CurveRun(size, repeat, seed, scores, report.trainable_parameters, labels))
            curves[backend.name] = summarise(runs, metrics, evaluation.bootstrap.confidence, failures)
        return curves

    def _best(self, scores: list[BackendScores], consequence: str) -> Best:
        """The first-ranked backend; a warning, ending in ``consequence``, when it is below min_coverage."""
        primary = primary_metric(self.job, self.plugins)
        min_coverage = self.job.config.evaluation.min_coverage
        best = best_backend(scores, primary, min_coverage=min_coverage)
        if not best.meets_min_coverage:
            self.echo(f"warning: {no_backend_qualifies(best, min_coverage, primary)}; {consequence}")
        return best

    def _corpus_backends(self, scores: list[BackendScores]) -> list[ResolvedBackend]:
        chosen = self.job.config.output.corpus_backends
        if chosen == "all":
            return list(self.job.backends)
        if chosen == "best":
            best = self._best(scores, "coding the corpus with it all the same").backend
            primary = primary_metric(self.job, self.plugins)
            self.echo(f"coding the corpus with the best backend by {primary.name}: {best}")
            return [b for b in self.job.backends if b.name == best]
        return [b for b in self.job.backends if b.name in chosen]

    def _code_corpus(
        self, backends: list[ResolvedBackend], specs: dict[str, BackendSpec], corpus: CorpusInfo
    ) -> list[CorpusSummary]:
        from tqdm import tqdm

        table = self.job.config.data.corpus
        assert table is not None
        # On a terminal the line redraws in place; in a log file one line a minute is enough.
        interactive = sys.stderr.isatty()
        bar = tqdm(
            total=corpus.n_documents * len(backends),
            unit="doc",
            unit_scale=True,
            file=sys.stderr,
            disable=not self.progress,
            dynamic_ncols=True,
            smoothing=0.1,
            mininterval=0.5 if interactive else 60,
        )
        summaries = []
        try:
            for backend in backends:
                spec = specs[backend.name]
                bar.set_description(f"coding corpus [{backend.name}]")
                out_dir = self.out / "predictions" / "corpus" / backend.name
                summary = code_corpus(
                    spec,
                    spec.build().resources(),
                    table,
                    corpus.files,
                    corpus.n_documents,
                    out_dir,
                    progress=bar.update,
                )
                summaries.append(summary)
        finally:
            bar.close()
        return summaries
