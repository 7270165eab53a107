"""What replicas tell the in-flight actor, and how a batch is named when the replicas die on it."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from scalecode.inflight import BatchSummary, InFlight, start_in_flight, tell


def batch(ids: list[str], paths: list[str] | None = None, rows: list[int] | None = None) -> pa.Table:
    columns = {"id": ids, "text": ["t"] * len(ids)}
    if paths is not None and rows is not None:
        columns |= {"path": paths, "row": rows}
    return pa.table(columns)


def test_a_batch_is_named_by_its_ids_and_each_files_rows_counted_from_one():
    summary = BatchSummary.of(batch(["a", "b", "c"], ["x.csv", "x.csv", "y.csv"], [4, 6, 0]))
    assert summary.describe() == "3 documents (ids 'a', 'b', 'c'; rows 5 to 7 of x.csv; rows 1 to 1 of y.csv)"
    many = BatchSummary.of(batch([str(i) for i in range(25)]))
    assert many.describe() == "25 documents (ids '0' to '24')"  # gold: no files, and too many to list
    assert BatchSummary.of(batch(["z"])).describe() == "1 document (ids 'z')"


def test_the_batch_started_most_often_and_never_finished_is_the_suspect():
    in_flight = InFlight()
    poisoned, innocent, done = (BatchSummary.of(batch([name])) for name in ("p", "i", "d"))
    for _ in range(3):
        in_flight.start(poisoned)  # sent again after each death, never finished
    in_flight.start(innocent)  # being coded when the run stopped
    in_flight.start(done)
    in_flight.finish(done)
    assert in_flight.suspects() == ([poisoned], 3)
    in_flight.start(done)  # a batch retried after one death, then finished: once less each
    in_flight.start(done)
    in_flight.finish(done)
    assert in_flight.suspects() == ([poisoned], 3)
    assert InFlight().suspects() == ([], 0)


@pytest.mark.usefixtures("ray_local")
def test_replicas_code_on_when_the_in_flight_actor_is_gone():
    import ray

    handle = start_in_flight()
    summary = BatchSummary.of(batch(["a"]))
    assert tell(handle, "start", summary, wait=True) is handle
    ray.kill(handle)
    # ray.kill is asynchronous: under load a call sent at once may still be answered. Once the actor
    # is gone, telling it gives up (None) rather than raising.
    deadline = time.monotonic() + 60
    while tell(handle, "start", summary, wait=True) is not None:
        assert time.monotonic() < deadline, "the killed actor still answers after a minute"
        time.sleep(0.2)


def test_a_batch_of_many_chunks_from_several_files_gets_the_same_summary_every_time():
    """The summary is the key under which a batch's start and finish meet: it must not depend on the
    order a threaded group_by happens to give."""
    chunks = [
        batch([f"{f}{i}" for i in range(50)], [f"{f}.csv"] * 50, list(range(50)))
        for f in ("c", "a", "b", "a", "c", "b")
    ]
    table = pa.concat_tables(chunks)
    summaries = {BatchSummary.of(table) for _ in range(200)}
    assert len(summaries) == 1
    (summary,) = summaries
    assert [path for path, _, _ in summary.places] == ["a.csv", "b.csv", "c.csv"]


def test_an_error_raised_while_a_replica_starts_is_told_from_its_type_line_on():
    from scalecode.inference import _raised

    transformers_like = Exception(
        "The actor died because of an error raised in its creation task\n"
        '  File "backend.py", line 3, in load\n'
        "OSError: data/models/missing is not a local folder and is not a valid model identifier\n"
        "If this is a private repository, make sure to pass a token having permission to this repo"
    )
    assert _raised(transformers_like) == (
        "OSError: data/models/missing is not a local folder and is not a valid model identifier "
        "If this is a private repository, make sure to pass a token having permission to this repo"
    )
    assert _raised(Exception("no type line here")) == "no type line here"
    assert len(_raised(Exception("ValueError: " + "x" * 5000))) == 600
