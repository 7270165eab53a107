"""Coding documents with Ray Data: an actor pool per backend, error rows, shards written whole.

Each Ray actor rebuilds its backend by name from a ``BackendSpec`` (plugins are loaded afresh on the
worker, secrets read from the worker's environment) and calls ``load()`` once. A batch is coded with
one ``predict_batch`` call; if that call fails, or answers in a shape that cannot be lined up with the
documents, the batch is coded again one document at a time, so one bad document costs one error row
and not the batch. Null, empty and undecodable texts never reach the backend: they get error rows.

What comes back is written by ``scalecode.corpus``: shards named after the input file and the rows
they hold, each whole or absent, and a rerun skips the documents already in them.
"""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from scalecode.backend import Backend, Resources
from scalecode.config import resolve_env
from scalecode.errors import BackendError, StopRun
from scalecode.inflight import BatchSummary, start_in_flight, suspects_message, tell
from scalecode.plugins import load_plugins
from scalecode.predictions import BatchShapeError, conform, error_rows, predictions_table
from scalecode.sources import CORRUPT, ID, PATH, ROW, TEXT
from scalecode.task import Task

DOC_HASH = "doc_hash"
PASSTHROUGH = (PATH, ROW, DOC_HASH)
# Ray Data's actor pools restart a dead replica and resend its batch forever by default: a document
# that kills the process (out of memory, a crash in native code) would be loaded and sent again
# without end, the run neither progressing nor failing. Bounded, such a batch fails the run.
REPLICA_RESTARTS = 3  # times one replica's process is started again after it died
BATCH_RETRIES = 2  # times a batch is sent again after the replica coding it died
STOPPED = "run stopped: "  # the error of rows a backend could not code because it stopped the run
# What a read task asks for: Ray Data's default, which the step that cuts what it reads into chunks
# (a repartition, which takes no resource options) must share to run in the same task; asking for
# less, the read would leave that step a separate task of one CPU, which a 1-CPU cluster cannot start.
READ_CPUS = 1.0
# Longer texts get an error row and never reach a backend: one such text (a whole archive in one
# field, a file read as one document) can exhaust a replica's memory, and a replica that dies takes
# its batch down with it. A million characters is ~200,000 words, some 700 pages: longer than any
# document a backend here codes whole (encoders read 512 tokens, LLM contexts hold ~100,000 words).
MAX_TEXT_CHARS = 1_000_000


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
    strings = column.cast(pa.string()) if not pa.types.is_string(column.type) else column
    blank = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(strings)), 0), True)
    too_long = pc.fill_null(pc.greater(pc.utf8_length(strings), MAX_TEXT_CHARS), False)
    if not pc.any(blank).as_py() and not pc.any(too_long).as_py() and not any(undecodable):
        return texts, reasons  # the usual batch: every text can be coded; checked at once
    for i, text in enumerate(texts):
        if undecodable[i]:
            reasons[i] = "undecodable bytes: the text is not valid UTF-8"
        elif text is None:
            reasons[i] = "null text"
        elif not text.strip():
            reasons[i] = "empty text"
        elif len(text) > MAX_TEXT_CHARS:
            reasons[i] = f"text longer than {MAX_TEXT_CHARS:,} characters"
    return texts, reasons


def code_batch(backend: Backend, name: str, batch: pa.Table) -> pa.Table:
    """Code one batch of (id, text) rows with a loaded backend; every row comes back, coded or not."""
    task = backend.task
    ids = [str(i) for i in batch.column(ID).to_pylist()]
    texts, reasons = _decode_texts(batch.column(TEXT))
    if CORRUPT in batch.column_names and batch.column(CORRUPT).null_count < len(batch):
        for i, corrupt in enumerate(batch.column(CORRUPT).to_pylist()):
            reasons[i] = corrupt or reasons[i]
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
    # "permissive": documents coded one by one may give an extra column as int64 for one and double
    # for another; "default" promotes only nulls and would fail the whole batch over it.
    table = pa.concat_tables([conform(t, task) for _, t in parts], promote_options="permissive")
    table = table.take(pa.array(np.argsort(positions, kind="stable")))
    for column in PASSTHROUGH:  # where each row came from, for the shard it is written to
        if column in batch.column_names:
            table = table.append_column(column, batch.column(column))
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

    def __init__(self, spec: BackendSpec, in_flight: Any = None) -> None:
        self.spec = spec
        self.in_flight = in_flight  # an ``InFlight`` actor, told of each batch (``scalecode.inflight``)
        self.backend = spec.build()
        self.backend.load()

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.in_flight is None:
            return code_batch(self.backend, self.spec.name, batch)
        summary = BatchSummary.of(batch)
        # Waited for: were this process to die at once, a message still on its way could be lost. The
        # finish need not be: the next start, from this process to the same actor, comes after it.
        self.in_flight = tell(self.in_flight, "start", summary, wait=True)
        table = code_batch(self.backend, self.spec.name, batch)
        if self.in_flight is not None:
            self.in_flight = tell(self.in_flight, "finish", summary, wait=False)
        return table


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
        # "local": a cluster of our own, even where `ray start` left one running on this machine (which
        # a bare ray.init() would join). The dashboard (on loopback) serves Ray's state API, which Ray
        # Train polls to watch its runs. Ray's processes get the state API's address from their
        # environment, which they inherit from this process at start: without it they look for the
        # cluster the last `ray start` recorded, not ours, and Ray Train's placement-group cleaner dies
        # with a traceback. It is set only while Ray starts, so that our own subprocesses (a `ray job
        # submit` to another cluster) do not inherit it.
        # Ray Train's preemption watcher waits for cloud nodes being drained, which never happens to a
        # cluster of one machine, and logs an error-level notice in every fit; it is off here unless
        # the user turns it on.
        port = _free_port()
        with _environment(
            RAY_API_SERVER_ADDRESS=f"http://127.0.0.1:{port}",
            RAY_TRAIN_ENABLE_PREEMPTION_WATCHER=os.environ.get("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0"),
        ):
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                dashboard_port=port,
                logging_level=logging.WARNING,
            )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # scalecode draws one progress line of its own
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no "execution finished" per dataset
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # we disabled them on purpose


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class Pool:
    """How many replicas of a backend run, and what each asks Ray for."""

    size: int
    cpus: float
    gpus: float


def plan_pool(resources: Resources, cluster_cpus: float, cluster_gpus: float) -> Pool:
    """Size the actor pool from the cluster and the backend's needs.

    One CPU stays free for Ray Data's read tasks (``READ_CPUS``): on a 2-CPU machine two actors
    holding a CPU each would leave the read task waiting forever. Actors therefore ask for a fraction
    of a CPU where needed, and for none on a 1-CPU machine; Ray does not pin CPUs to cores, so they
    still use what is free.
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
    cpus = min(resources.cpus, max(cluster_cpus - READ_CPUS, 0.0) / size)
    # Rounded down: 16 replicas of 15/16 CPU rounded to 0.938 would hold 15.008 of 15 CPUs, and the
    # last would wait for a read task to end. (The 1e-9 keeps 0.7 from becoming 0.699.)
    return Pool(size=size, cpus=math.floor(cpus * 1000 + 1e-9) / 1000, gpus=resources.gpus)


def plan_chunk_rows(todo: int, batch_size: int, replicas: int) -> int:
    """Documents per chunk (one ``predict_batch`` call): at most the backend's batch size, and as many
    chunks as make every replica code the same number of them, at least two each. Equal chunks matter
    when a backend's batches are large (an encoder codes ~1,000 documents per call, to sort them by
    length with little padding): a last chunk coded by one replica while the others idle would cost
    a large share of a small corpus's time.
    """
    per_replica = max(2, -(-todo // (replicas * batch_size)))
    return max(1, -(-todo // (replicas * per_replica)))


def cluster_resources() -> tuple[float, float]:
    import ray

    available = ray.cluster_resources()
    return float(available.get("CPU", 1)), float(available.get("GPU", 0))


def cluster_pool(resources: Resources) -> Pool:
    """The actor pool a backend gets on the cluster Ray is connected to."""
    return plan_pool(resources, *cluster_resources())


def code_dataset(
    dataset: Any, spec: BackendSpec, resources: Resources, batch_size: int | None = None
) -> Iterator[pa.Table]:
    """The dataset coded by an actor pool of the backend, ``batch_size`` documents per call at most
    (the backend's own batch size unless given), as the coded batches come; a backend's StopRun and
    a replica that kept dying are raised as errors naming the backend (and, for the latter, the
    documents it died on)."""
    in_flight = start_in_flight()
    return coded_batches(map_with_backend(dataset, spec, resources, batch_size, in_flight), spec, in_flight)


def map_with_backend(
    dataset: Any,
    spec: BackendSpec,
    resources: Resources,
    batch_size: int | None = None,
    in_flight: Any = None,
) -> Any:
    """The dataset coded by an actor pool of the backend, ``batch_size`` documents per call at most
    (the backend's own batch size unless given); ``in_flight``: an ``InFlight`` actor the replicas
    tell of each batch."""
    from ray.data import ActorPoolStrategy

    pool = cluster_pool(resources)
    with warnings.catch_warnings():
        # Ray (2.60) takes actor options only as ray_remote_args, which it deprecates in favour of
        # named parameters it does not yet have for these; its warning would reach the user.
        warnings.filterwarnings(
            "ignore", message="`ray_remote_args` is deprecated", category=DeprecationWarning
        )
        return dataset.map_batches(
            BackendActor,
            fn_constructor_args=(spec, in_flight),
            batch_size=batch_size or resources.batch_size,
            batch_format="pyarrow",
            # Every replica starts at once: started one by one as the pool grows, the last starts a
            # model load (~10 s on 2 cores) after the first has begun coding, and a small corpus ends
            # with one replica coding while the others are not ready. The pool still shrinks when
            # replicas idle.
            compute=ActorPoolStrategy(min_size=1, max_size=pool.size, initial_size=pool.size),
            num_cpus=pool.cpus,
            num_gpus=pool.gpus or None,
            max_restarts=REPLICA_RESTARTS,
            max_task_retries=BATCH_RETRIES,
        )


def coded_batches(coded: Any, spec: BackendSpec, in_flight: Any = None) -> Iterator[pa.Table]:
    """The batches of a dataset coded by ``map_with_backend``, as they come; a backend's StopRun and
    a replica that kept dying are raised here as errors naming the backend."""
    from ray.exceptions import RayActorError

    try:
        for batch in coded.iter_batches(batch_format="pyarrow", batch_size=None):
            check_stopped(batch)
            yield batch
    except RayActorError as exc:
        if getattr(exc, "actor_init_failed", False):
            # The backend's constructor or load() raised: no death to retry, and nothing of memory.
            raise BackendError(spec.name, f"a replica could not start: {_raised(exc)}") from exc
        raise BackendError(
            spec.name,
            "a replica's process died (killed for lack of memory, or crashed in native code) more "
            f"often than it is replaced: a batch is sent again at most {BATCH_RETRIES} times, a "
            f"replica restarted at most {REPLICA_RESTARTS} times, so that a document that kills it "
            f"stops the run instead of being retried forever."
            + (suspects_message(in_flight) if in_flight is not None else "")
            + f" Ray said: {exc}",
        ) from exc


_RAISED = re.compile(r"^[A-Za-z_][\w.]*: ")  # "ValueError: ...", "pydantic.ValidationError: ..."


def _raised(exc: Exception, most: int = 600) -> str:
    """The exception a Ray error carries, from its traceback's ``Type: message`` line to the end, on one
    line: a message may span lines (transformers' "not found" goes on with advice about tokens,
    pydantic's with a link), and its last line alone would hide the type and the cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if _RAISED.match(line)]
    text = " ".join(lines[starts[-1] :] if starts else lines[-1:]) or type(exc).__name__
    return text if len(text) <= most else text[: most - 1] + "…"


# --- gold and corpus -----------------------------------------------------------------------------


def predict_texts(
    spec: BackendSpec, resources: Resources, ids: Sequence[str], texts: Sequence[str]
) -> pa.Table:
    """Code a small in-memory set of documents (the gold test split) through the same actor path."""
    import ray

    table = pa.table({ID: pa.array(list(ids), pa.string()), TEXT: pa.array(list(texts), pa.string())})
    rows = plan_chunk_rows(len(table), resources.batch_size, cluster_pool(resources).size)
    dataset = ray.data.from_arrow(table).repartition(max(1, -(-len(table) // rows)))
    parts = list(code_dataset(dataset, spec, resources, batch_size=rows))
    if not parts:
        return pa.table({})
    return pa.concat_tables(parts, promote_options="permissive")  # batches may differ as in code_batch
