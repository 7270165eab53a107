"""Coding with Ray Data: bad rows become error rows, failures stay with one document."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import pyarrow as pa
import pytest

from scalecode.backend import Backend, Predictions, Resources
from scalecode.inference import Pool, code_batch, plan_chunk_rows, plan_pool, predict_texts
from scalecode.task import Task, TaskType

TASK = Task(type=TaskType.CLASSIFICATION, labels=["pos", "neg"])


def test_bad_rows_become_error_rows_and_one_failure_costs_one_row(spec):
    backend = spec.build()
    backend.load()
    batch = pa.table(
        {
            "id": ["1", "2", "3", "4", "5", "6", "7"],
            "text": pa.array(
                [b"good", None, b"   ", b"caf\xe9", b"boom goes the batch", b"bad day", b"huh?"], pa.binary()
            ),
        }
    )
    rows = code_batch(backend, "moody", batch).to_pylist()
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5", "6", "7"]  # every row back, in order
    assert [r["label"] for r in rows] == ["pos", None, None, None, None, "neg", None]
    errors = [r["error"] for r in rows]
    assert errors[1] == "null text"
    assert errors[2] == "empty text"
    assert errors[3] == "undecodable bytes: the text is not valid UTF-8"
    assert errors[4] == "backend error: RuntimeError: boom"
    assert errors[6] == "invalid label 'Positive!': not in the codebook"
    assert rows[6]["raw"] == "Positive!"


@pytest.mark.parametrize(
    ("resources", "cpus", "gpus", "expected"),
    [
        (Resources(cpus=1), 2, 0, Pool(size=2, cpus=0.5, gpus=0)),  # leaves a CPU for reading: no deadlock
        (Resources(cpus=1), 16, 0, Pool(size=16, cpus=0.937, gpus=0)),  # rounded down: all fit
        (Resources(cpus=2), 1, 0, Pool(size=1, cpus=0.0, gpus=0)),  # the read task's CPU is the only one
        (Resources(cpus=4, gpus=1), 32, 4, Pool(size=4, cpus=4, gpus=1)),
    ],
)
def test_actor_pool_is_sized_from_the_cluster(resources, cpus, gpus, expected):
    assert plan_pool(resources, cpus, gpus) == expected


@pytest.mark.parametrize("cluster_cpus", [1, 2, 3, 4, 8, 16])
@pytest.mark.parametrize("resources", [Resources(cpus=1), Resources(cpus=0.25), Resources(cpus=4, gpus=1)])
def test_the_pool_always_leaves_a_read_task_its_cpu(cluster_cpus, resources):
    """A read task asks for one CPU (Ray Data's default, see READ_CPUS): were the replicas to hold
    more than the rest, it would never start and the run would wait forever (--num-cpus 1)."""
    pool = plan_pool(resources, cluster_cpus, 4)
    assert pool.size * pool.cpus + 1.0 <= cluster_cpus


def test_a_gpu_backend_on_a_cluster_without_gpus_is_refused():
    with pytest.raises(RuntimeError, match=r"needs 1 GPU\(s\) per replica; the cluster has 0"):
        plan_pool(Resources(gpus=1), 8, 0)


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize(
    ("todo", "batch_size", "replicas", "expected"),
    [
        (5000, 1024, 2, 834),  # 6 chunks: 3 per replica, none coding a last chunk alone
        (5000, 128, 2, 125),  # 40 chunks of one batch or less
        (10, 1024, 2, 3),  # a small corpus: still two chunks per replica
        (1, 256, 4, 1),
        (100_000, 256, 1, 256),
    ],
)
def test_chunks_fill_every_replica_equally(todo: int, batch_size: int, replicas: int, expected: int) -> None:
    rows = plan_chunk_rows(todo, batch_size, replicas)
    assert rows == expected
    assert rows <= batch_size
    chunks = -(-todo // rows)
    assert chunks >= min(todo, 2 * replicas)
    assert chunks % replicas == 0 or todo < 2 * replicas


def test_gold_texts_go_through_the_same_actor_path(spec):
    table = predict_texts(
        spec, Resources(batch_size=4), [str(i) for i in range(10)], ["good"] * 5 + ["bad"] * 4 + ["boom"]
    )
    rows = {r["id"]: r for r in table.to_pylist()}
    assert len(rows) == 10
    assert rows["0"]["label"] == "pos" and rows["5"]["label"] == "neg"
    assert rows["9"]["error"] == "backend error: RuntimeError: boom"


def test_ray_processes_find_the_state_api_of_the_embedded_cluster(ray_local):
    """Ray Train's placement-group cleaner asks Ray's state API about its controller; in an embedded
    cluster that must reach our dashboard, not the cluster a past `ray start` recorded."""
    import os

    import ray

    @ray.remote(num_cpus=0)
    def ask() -> tuple[str | None, int, str | None]:
        from ray.util.state import list_nodes

        environ = os.environ
        return (
            environ.get("RAY_API_SERVER_ADDRESS"),
            len(list_nodes(timeout=30)),
            environ.get("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"),
        )

    address, nodes, preemption_watcher = ray.get(ask.remote())
    assert address is not None and address.startswith("http://127.0.0.1:")
    assert nodes == 1  # the state API answered, through that address
    assert "RAY_API_SERVER_ADDRESS" not in os.environ  # our subprocesses (ray job submit) must not inherit it
    # No node of a one-machine cluster is drained: Ray Train's watcher of drains stays off (and quiet).
    assert preemption_watcher == "0"


def test_coding_workers_do_not_import_scoring_libraries() -> None:
    # Every Ray worker that reads or codes documents imports scalecode.inference; scikit-learn costs a
    # 2-core machine two seconds of CPU per worker, so it is loaded only where something is scored.
    code = "import sys, scalecode.corpus, scalecode.plugins; print('sklearn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_texts_longer_than_the_cap_become_error_rows_and_never_reach_the_backend(spec):
    """One huge text (a whole archive in one field) can exhaust a replica's memory: never sent."""
    backend = spec.build()
    backend.load()
    at_cap = "good" + " " * (1_000_000 - 4)
    batch = pa.table({"id": ["1", "2", "3"], "text": [at_cap, at_cap + "!", "bad"]})
    rows = code_batch(backend, "moody", batch).to_pylist()
    assert [r["label"] for r in rows] == ["pos", None, "neg"]
    assert rows[1]["error"] == "text longer than 1,000,000 characters"


class Counting(Backend):
    """Fails a batch of several texts, so each is coded alone; 'tokens' is int for some, float for others,
    and 'path' (which the pipeline adds) is answered where a text says so."""

    name = "counting"
    task_types = frozenset({TASK.type})

    def predict_batch(self, texts: Sequence[str]) -> Predictions:
        if len(texts) > 1:
            raise RuntimeError("one at a time")
        text = texts[0]
        tokens = [len(text)] if text.startswith("int") else [len(text) + 0.5]
        extra = {"path": ["mine"]} if text.startswith("path") else {"tokens": tokens}
        return Predictions(label=["pos"], extra=extra)


def test_an_extra_column_typed_int_for_one_document_and_float_for_another_is_kept():
    batch = pa.table({"id": ["1", "2"], "text": ["int text", "float text"]})
    rows = code_batch(Counting(TASK), "counting", batch).to_pylist()
    assert [(r["label"], r["tokens"], r["error"]) for r in rows] == [("pos", 8.0, None), ("pos", 10.5, None)]


def test_an_extra_column_named_like_one_the_pipeline_adds_becomes_error_rows():
    """An extra 'path' would be a second 'path' column beside the one the shard writer reads."""
    batch = pa.table(
        {
            "id": ["1", "2"],
            "text": ["path please", "path again"],
            "path": ["a.csv", "a.csv"],
            "row": [0, 1],
            "doc_hash": pa.array([7, 8], pa.uint64()),
        }
    )
    table = code_batch(Counting(TASK), "counting", batch)
    assert len(set(table.column_names)) == len(table.column_names)
    assert table.column("path").to_pylist() == ["a.csv", "a.csv"]
    assert (
        table.column("error").to_pylist()
        == ["backend answered nonsense: extra column 'path' collides with a column scalecode adds"] * 2
    )
