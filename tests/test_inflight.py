"""What replicas tell the in-flight actor, and how a batch is named when the replicas die on it."""

from __future__ import annotations

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
    assert tell(handle, "start", summary, wait=True) is None  # given up, not raised
