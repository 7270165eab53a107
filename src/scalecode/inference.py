"""Coding documents with Ray Data: an actor pool per backend, error rows, shards written whole.

Each Ray actor rebuilds its backend by name from a ``BackendSpec`` (plugins are loaded afresh on the
worker, secrets read from the worker's environment) and calls ``load()`` once. A batch is coded with
one ``predict_batch`` call; if that call fails, or answers in a shape that cannot be lined up with the
documents, the batch is coded again one document at a time, so one bad document costs one error row
and not the batch. Null, empty and undecodable texts never reach the backend: they get error rows.

The corpus is written as one Parquet shard per input file, named after it, written to a temporary
name and renamed when complete. A shard that exists is finished, so running the same job again skips
it: the output of an interrupted run, completed, equals that of an unbroken one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scalecode.backend import Backend, Resources
from scalecode.config import TableConfig, resolve_env
from scalecode.errors import StopRun
from scalecode.plugins import load_plugins
from scalecode.predictions import BatchShapeError, conform, error_rows, predictions_table
from scalecode.task import Task

ID, TEXT, PATH = "id", "text", "path"
STOPPED = "run stopped: "  # the error of rows a backend could not code because it stopped the run


@dataclass(frozen=True)
class BackendSpec:
    """Everything a worker needs to rebuild a backend; backend instances never cross the cluster."""

    name: str  # the backend's name in the job
    plugin: str  # the registered backend
    params: dict[str, Any]  # as written in the job: {"$env": ...} is resolved on the worker
    task: dict[str, Any]
    state_dir: str | None = None
    plugins_dir: str | None = None
    allow: tuple[str, ...] | None = None
    work_dir: str | None = None

    def build(self) -> Backend:
        plugins = load_plugins(self.plugins_dir, allow=self.allow)
        info = plugins.backend(self.plugin)
        task = Task.model_validate(self.task)
        backend = info.backend_class(task, resolve_env(self.params), state_dir=self.state_dir)
        # Set, not passed: backends with their own __init__ need not know about it.
        backend.work_dir = Path(self.work_dir) if self.work_dir is not None else None
        return backend


def _decode_texts(column: pa.ChunkedArray | pa.Array) -> tuple[list[str | None], list[str | None]]:
    """Texts as str (or None), and for each a reason it cannot be coded (or None)."""
    undecodable = [False] * len(column)
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        try:  # the whole batch at once when it is all valid UTF-8, the usual case
            column = column.cast(pa.string())
        except pa.ArrowInvalid:
            raw = column.to_pylist()
            decoded: list[str | None] = []
            for i, value in enumerate(raw):
                try:
                    decoded.append(None if value is None else value.decode("utf-8"))
                except UnicodeDecodeError:
                    decoded.append(None)
                    undecodable[i] = True
            column = pa.array(decoded, pa.string())
    texts = pl.Series(TEXT, column).cast(pl.String).to_list()
    reasons: list[str | None] = [None] * len(texts)
    for i, text in enumerate(texts):
        if undecodable[i]:
            reasons[i] = "undecodable bytes: the text is not valid UTF-8"
        elif text is None:
            reasons[i] = "null text"
        elif not text.strip():
            reasons[i] = "empty text"
    return texts, reasons


def code_batch(backend: Backend, name: str, batch: pa.Table) -> pa.Table:
    """Code one batch of (id, text) rows with a loaded backend; every row comes back, coded or not."""
    task = backend.task
    ids = [str(i) for i in batch.column(ID).to_pylist()]
    texts, reasons = _decode_texts(batch.column(TEXT))
    good = [i for i, reason in enumerate(reasons) if reason is None]
    parts: list[tuple[list[int], pa.Table]] = []
    bad = [i for i, reason in enumerate(reasons) if reason is not None]
    if bad:
        parts.append(
            (
                bad,
                error_rows(
                    [ids[i] for i in bad], backend=name, task=task, reasons=[str(reasons[i]) for i in bad]
                ),
            )
        )
    if good:
        parts.extend(_predict(backend, name, [ids[i] for i in good], [texts[i] for i in good], good))  # type: ignore[misc]
    positions = np.concatenate([np.asarray(p, dtype=np.int64) for p, _ in parts])
    table = pa.concat_tables([conform(t, task) for _, t in parts], promote_options="default")
    table = table.take(pa.array(np.argsort(positions, kind="stable")))
    if PATH in batch.column_names:
        table = table.append_column(PATH, batch.column(PATH))
    return table


def _predict(
    backend: Backend, name: str, ids: list[str], texts: list[str], positions: list[int]
) -> list[tuple[list[int], pa.Table]]:
    started = time.perf_counter()
    try:
        answers = backend.predict_batch(texts)
        table = predictions_table(
            answers, ids=ids, backend=name, task=backend.task, latency_s=time.perf_counter() - started
        )
        return [(positions, table)]
    except StopRun as exc:
        # Ray Data does not carry exception types back to the driver, so the stop travels as rows
        # the driver recognises (stopped_by); they are never written, and the next run codes them.
        reasons = [f"{STOPPED}{exc}"] * len(ids)
        return [(positions, error_rows(ids, backend=name, task=backend.task, reasons=reasons))]
    except Exception as exc:
        if len(texts) == 1:
            reason = _reason(exc)
            return [(positions, error_rows(ids, backend=name, task=backend.task, reasons=[reason]))]
    # The batch failed as a whole: code documents one by one to confine the failure.
    out: list[tuple[list[int], pa.Table]] = []
    for i in range(len(texts)):
        out.extend(_predict(backend, name, [ids[i]], [texts[i]], [positions[i]]))
    return out


def _reason(exc: Exception) -> str:
    if isinstance(exc, BatchShapeError):
        return f"backend answered nonsense: {exc}"
    return f"backend error: {type(exc).__name__}: {exc}"


def check_stopped(table: pa.Table) -> None:
    """Raise the backend's StopRun on the driver if coded rows carry it (see ``_predict``)."""
    if table.num_rows == 0 or "error" not in table.column_names:
        return
    for reason in pc.unique(table.column("error").drop_null()).to_pylist():
        if reason.startswith(STOPPED):
            raise StopRun(reason[len(STOPPED) :])


class BackendActor:
    """Ray Data callable class: builds and loads the backend once per actor, codes batches."""

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.backend = spec.build()
        self.backend.load()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return code_batch(self.backend, self.spec.name, batch)


# --- Ray ---------------------------------------------------------------------------------------


def start_ray(num_cpus: int | None = None) -> None:
    """Join the cluster in RAY_ADDRESS (or the one ``ray job submit`` runs us on), else start one here."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import logging

    import ray

    if ray.is_initialized():
        return
    # Workers of an embedded cluster inherit this environment: Ray Data's and Ray's own notices
    # (deprecations inside Ray, "progress bars disabled", "execution finished") stay out of the
    # user's terminal; errors still reach it as exceptions.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    # An embedded cluster gets Ray's default (token authentication); its notice about it is noise here.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(logging_level=logging.WARNING)
    else:
        # The dashboard (on loopback) serves Ray's state API, which Ray Train polls to watch its runs.
        ray.init(num_cpus=num_cpus, include_dashboard=True, logging_level=logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # scalecode draws one progress line of its own
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no "execution finished" per dataset
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # we disabled them on purpose


@dataclass(frozen=True)
class Pool:
    """How many replicas of a backend run, and what each asks Ray for."""

    size: int
    cpus: float
    gpus: float


def plan_pool(resources: Resources, cluster_cpus: float, cluster_gpus: float) -> Pool:
    """Size the actor pool from the cluster and the backend's needs.

    One CPU stays free for Ray Data's read and write tasks: on a 2-CPU machine two actors holding a
    CPU each would leave the read task waiting forever. Actors therefore ask for a fraction of a CPU
    where needed; Ray does not pin fractions to cores, so they still use what is free.
    """
    if resources.gpus > 0:
        if cluster_gpus < resources.gpus:
            raise RuntimeError(
                f"the backend needs {resources.gpus} GPU(s) per replica; the cluster has {cluster_gpus}"
            )
        size = max(1, math.floor(cluster_gpus / resources.gpus))
    else:
        size = max(1, math.floor(cluster_cpus / max(resources.cpus, 1e-3)))
    if resources.max_replicas is not None:
        size = max(1, min(size, resources.max_replicas))
    reserve = 1.0 if cluster_cpus >= 2 else cluster_cpus / 2
    cpus = min(resources.cpus, max(cluster_cpus - reserve, 0.1) / size)
    return Pool(size=size, cpus=round(cpus, 3), gpus=resources.gpus)


def cluster_resources() -> tuple[float, float]:
    import ray

    available = ray.cluster_resources()
    return float(available.get("CPU", 1)), float(available.get("GPU", 0))


def map_with_backend(dataset: Any, spec: BackendSpec, resources: Resources) -> Any:
    """The dataset coded by an actor pool of the backend."""
    from ray.data import ActorPoolStrategy

    cpus, gpus = cluster_resources()
    pool = plan_pool(resources, cpus, gpus)
    return dataset.map_batches(
        BackendActor,
        fn_constructor_args=(spec,),
        batch_size=resources.batch_size,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(min_size=1, max_size=pool.size),
        num_cpus=pool.cpus,
        num_gpus=pool.gpus or None,
    )


# --- gold and corpus -----------------------------------------------------------------------------


def predict_texts(
    spec: BackendSpec, resources: Resources, ids: Sequence[str], texts: Sequence[str]
) -> pa.Table:
    """Code a small in-memory set of documents (the gold test split) through the same actor path."""
    import ray

    table = pa.table({ID: pa.array(list(ids), pa.string()), TEXT: pa.array(list(texts), pa.string())})
    blocks = max(1, min(len(table) // max(resources.batch_size, 1), 8))
    dataset = ray.data.from_arrow(table).repartition(blocks)
    parts = []
    for batch in map_with_backend(dataset, spec, resources).iter_batches(
        batch_format="pyarrow", batch_size=None
    ):
        check_stopped(batch)
        parts.append(batch)
    if not parts:
        return pa.table({})
    return pa.concat_tables(parts, promote_options="default")


@dataclass
class CorpusSummary:
    """What coding the corpus with one backend did."""

    backend: str
    documents: int = 0
    coded: int = 0
    errors: int = 0
    skipped_shards: int = 0
    written_shards: int = 0
    seconds: float = 0.0
    error_reasons: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None  # where the backend reports what each document cost (APIs)


def shard_name(path: Path, root: Path) -> str:
    """The output shard for an input file: its path under the corpus root, flattened."""
    relative = path.relative_to(root) if root.is_dir() else Path(path.name)
    name = "__".join(relative.parts)
    return name if name.endswith(".parquet") else f"{name}.parquet"


def read_corpus(files: Sequence[Path], table: TableConfig, reader_name: str, spec: BackendSpec) -> Any:
    """A Ray dataset of (id, text, path) rows over the corpus files, read in parallel and streamed.

    Parquet, CSV and TSV use Ray's own readers; any other format is read file by file in Ray tasks
    by the reader of that name, looked up from the plugins afresh in each task (a function from a
    plugins-directory file cannot be pickled to another process).
    """
    import pyarrow.csv as pacsv
    import ray

    paths = [str(f.resolve()) for f in files]
    if reader_name == "parquet":
        ds = ray.data.read_parquet(paths, columns=[table.id_column, table.text_column], include_paths=True)
    elif reader_name in ("csv", "tsv") and table.encoding.lower().replace("-", "") in ("utf8", "utf8sig"):
        # The text is read as bytes and decoded per row, so an undecodable row becomes an error row.
        convert = pacsv.ConvertOptions(
            column_types={table.id_column: pa.string(), table.text_column: pa.binary()},
            include_columns=[table.id_column, table.text_column],
        )
        parse = pacsv.ParseOptions(delimiter="\t", quote_char=False) if reader_name == "tsv" else None
        ds = ray.data.read_csv(paths, convert_options=convert, parse_options=parse, include_paths=True)
    else:
        plugins_dir, allow = spec.plugins_dir, spec.allow

        def load(batch: dict[str, Any]) -> pa.Table:
            path = str(batch["item"][0])
            reader = next(r for r in load_plugins(plugins_dir, allow=allow).readers if r.name == reader_name)
            frame = reader.read(Path(path), table.encoding).select(
                pl.col(table.id_column).cast(pl.String), pl.col(table.text_column)
            )
            return frame.with_columns(pl.lit(path).alias(PATH)).to_arrow()

        ds = ray.data.from_items(paths).map_batches(load, batch_size=1, batch_format="numpy")
    return ds.rename_columns({table.id_column: ID, table.text_column: TEXT})


class ShardWriter:
    """Collects coded rows per input file and writes each shard whole once all its rows are in."""

    def __init__(self, out_dir: Path, expected: dict[str, tuple[str, int]]) -> None:
        self.out_dir = out_dir
        self.expected = expected  # resolved input path -> (shard name, rows)
        self.pending: dict[str, list[pa.Table]] = {}
        self.received: dict[str, int] = {}
        self.written: list[str] = []
        out_dir.mkdir(parents=True, exist_ok=True)

    def add(self, table: pa.Table) -> None:
        paths = table.column(PATH).to_pylist()
        table = table.drop_columns([PATH])
        for path in dict.fromkeys(paths):
            key = str(Path(path).resolve())
            if key not in self.expected:
                raise RuntimeError(f"coded rows came from {path}, which is not a corpus file of this run")
            rows = table.filter(pa.array([p == path for p in paths]))
            self.pending.setdefault(key, []).append(rows)
            self.received[key] = self.received.get(key, 0) + len(rows)
            name, expected = self.expected[key]
            if self.received[key] > expected:
                raise RuntimeError(f"{path}: received {self.received[key]} rows for {expected} documents")
            if self.received[key] == expected:
                self._write(key, name)

    def _write(self, key: str, name: str) -> None:
        table = pa.concat_tables(self.pending.pop(key), promote_options="default")
        table = table.sort_by([(ID, "ascending")])  # the same rows, in the same order, on every run
        final = self.out_dir / name
        partial = final.with_name(f".{final.name}.partial")
        pq.write_table(table, partial)
        os.replace(partial, final)
        self.written.append(name)

    def unfinished(self) -> list[str]:
        return [self.expected[k][0] for k in self.expected if self.expected[k][0] not in self.written]


def finished_shards(out_dir: Path) -> set[str]:
    return {p.name for p in out_dir.glob("*.parquet")} if out_dir.is_dir() else set()


def code_corpus(
    spec: BackendSpec,
    resources: Resources,
    table: TableConfig,
    files: Sequence[Path],
    counts: dict[str, int],
    reader_name: str,
    out_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> CorpusSummary:
    """Code every corpus file with one backend into ``out_dir``, skipping shards already written.

    ``counts`` gives the documents of each file (by resolved path), as ``inspect_corpus`` found them.
    """
    started = time.perf_counter()
    root = Path(table.path)
    expected = {key: (shard_name(Path(key), root.resolve()), n) for key, n in counts.items()}
    summary = CorpusSummary(backend=spec.name, documents=sum(counts.values()))
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".*.partial"):
        stale.unlink()  # left by a run that was killed while writing
    done = finished_shards(out_dir)
    todo = [f for f in files if expected[str(f.resolve())][0] not in done]
    summary.skipped_shards = len(files) - len(todo)
    if progress is not None and summary.skipped_shards:
        progress(sum(n for key, (name, n) in expected.items() if name in done))
    writer = ShardWriter(out_dir, {str(f.resolve()): expected[str(f.resolve())] for f in todo})
    empty = error_rows([], backend=spec.name, task=Task.model_validate(spec.task), reasons=[])
    for file in todo:  # an empty input file still gets its (empty) shard, with the standard columns
        key = str(file.resolve())
        if expected[key][1] == 0:
            writer.expected.pop(key)
            pq.write_table(empty, out_dir / expected[key][0])
    if writer.expected:
        dataset = read_corpus([Path(k) for k in writer.expected], table, reader_name, spec)
        dataset = dataset.repartition(target_num_rows_per_block=resources.batch_size)
        for batch in map_with_backend(dataset, spec, resources).iter_batches(
            batch_format="pyarrow", batch_size=None
        ):
            check_stopped(batch)
            writer.add(batch)
            if progress is not None:
                progress(len(batch))
        missing = writer.unfinished()
        if missing:
            raise RuntimeError(f"rows of {', '.join(missing)} never came back from the backend")
    summary.written_shards = len(writer.written)
    summary.seconds = time.perf_counter() - started
    for shard in sorted(finished_shards(out_dir)):
        if "cost_usd" in pq.read_schema(out_dir / shard).names:
            cost = pl.read_parquet(out_dir / shard, columns=["cost_usd"])["cost_usd"].sum()
            summary.cost_usd = (summary.cost_usd or 0.0) + float(cost)
        reasons = pl.read_parquet(out_dir / shard, columns=["error"])["error"].drop_nulls()
        summary.errors += len(reasons)
        for reason, count in reasons.value_counts().iter_rows():
            summary.error_reasons[reason] = summary.error_reasons.get(reason, 0) + count
        summary.coded += pq.ParquetFile(out_dir / shard).metadata.num_rows - len(reasons)
    return summary
