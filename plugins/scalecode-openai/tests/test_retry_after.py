"""A server asking for a longer wait (Retry-After) than the openai client waits out itself.

The client honours a Retry-After up to its own cap (120 s in current releases; a longer one is not
retried at all) and gives up. Without more, a gateway's "429, Retry-After: 300" would become an error
row at once for every document, each after one refused request. Waits are recorded here instead of
slept: ``requester.sleep`` is the backend's only way to wait for a server.
"""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from scalecode.errors import StopRun
from scalecode_openai.testing import loaded_backend


def backend(api, tmp_path, **params):
    return loaded_backend(api, tmp_path, **{"max_retries": 2, "concurrency": 1, **params})


def recorded_waits(coder) -> list[float]:
    """The seconds ``coder`` waits for its server from now on, recorded, not slept."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    coder.requester.sleep = sleep
    return waits


def test_a_wait_longer_than_the_client_honours_is_waited_out_then_asked_again(api, tmp_path):
    api.faults.retry_after_s = 300  # more than the client's cap: it would not retry
    api.faults.retry_after_ms_header = False  # Retry-After alone, as gateways send it
    coder = backend(api, tmp_path)
    waits = recorded_waits(coder)
    answers = coder.predict_batch(["[[fault:429*1]] a negative text", "a positive one"])
    assert list(answers.label) == ["negative", "positive"] and answers.error == [None, None]
    assert waits == [300.0]
    attempts = [c for c in api.chat_calls() if "fault" in str(c.body)]
    assert [c.status for c in attempts] == [429, 200]


def test_a_server_that_keeps_asking_gets_max_retries_waits_then_an_honest_error_row(api, tmp_path):
    api.faults.retry_after_s = 300
    coder = backend(api, tmp_path)
    waits = recorded_waits(coder)
    answers = coder.predict_batch(["[[fault:429]] always limited", "a positive one"])
    assert waits == [300.0, 300.0]  # max_retries waits, as the client would have made
    assert len([c for c in api.chat_calls() if c.status == 429]) == 3  # so the error row's count is true
    assert answers.error[0].startswith("API error after 2 retries: RateLimitError (429)")
    assert list(answers.retry) == [True, False] and answers.label[1] == "positive"


def test_a_wait_longer_than_max_retry_after_s_stops_the_run_instead_of_an_error_row_each(api, tmp_path):
    api.faults.retry_after_s = 7200  # a per-day quota: every later request would be refused too
    coder = backend(api, tmp_path, concurrency=4)
    waits = recorded_waits(coder)
    texts = [f"[[fault:429]] positive {i}" for i in range(20)]
    with pytest.raises(StopRun, match=r"RateLimitError \(429\).*asks to wait 2 h.*max_retry_after_s") as stop:
        coder.predict_batch(texts)
    assert "retries" not in str(stop.value)  # the client did not retry it: it must not say so
    assert "run the job again" in str(stop.value)
    assert waits == []
    assert len(api.chat_calls()) <= 4  # at most the requests already in flight, not one per document
    api.reset()
    with pytest.raises(StopRun, match="max_retry_after_s"):  # the replica sends nothing more
        coder.predict_batch(["positive four"])
    assert api.chat_calls() == []


def test_max_retry_after_s_sets_how_long_a_wait_is_waited_out(api, tmp_path):
    api.faults.retry_after_s = 300
    coder = backend(api, tmp_path, max_retry_after_s=200)
    waits = recorded_waits(coder)
    with pytest.raises(StopRun, match=r"asks to wait 5 min.*max_retry_after_s \(200 s\)"):
        coder.predict_batch(["[[fault:429*1]] positive"])
    assert waits == []
    coder = backend(api, tmp_path / "longer", max_retry_after_s=400)
    waits = recorded_waits(coder)
    api.reset()
    assert coder.predict_batch(["[[fault:429*1]] positive"]).label == ["positive"]
    assert waits == [300.0]


def test_a_wait_the_client_honours_is_left_to_the_client(api, tmp_path):
    api.faults.retry_after_s = 0.05
    coder = backend(api, tmp_path)
    waits = recorded_waits(coder)
    answers = coder.predict_batch(["[[fault:429*2]] a negative text"])
    assert answers.label == ["negative"]
    assert waits == []  # the client waited, twice; the backend added nothing


def test_the_wait_asked_is_read_as_the_client_reads_it():
    from scalecode_openai.client import retry_after

    def headers(**values: str) -> dict[str, str]:  # as a response's headers answer .get(lowercase name)
        return {k.replace("_", "-"): v for k, v in values.items()}

    assert retry_after(headers(retry_after="300")) == 300.0
    assert retry_after(headers(retry_after="1.5")) == 1.5
    assert retry_after(headers(retry_after_ms="2500", retry_after="9")) == 2.5  # milliseconds first
    date = email.utils.formatdate(time.time() + 600, usegmt=True)
    assert retry_after(headers(retry_after=date)) == pytest.approx(600, abs=5)
    past = email.utils.formatdate(time.time() - 600, usegmt=True)
    for none in (
        headers(),
        headers(retry_after="soon"),
        headers(retry_after=past),
        headers(retry_after="-3"),
    ):
        assert retry_after(none) is None
    assert retry_after(headers(retry_after="1e999")) == float("inf")  # absurdly long: stop, not ignore


def test_a_run_halted_meanwhile_stops_a_request_waiting_out_a_retry_after(api, tmp_path):
    """Another request halts the run (a refused key, say) while one waits out a long Retry-After: the
    wait ends at once, so the run stops now, not when the longest wait is over."""
    api.faults.retry_after_s = 300
    coder = backend(api, tmp_path)
    cancelled: list[float] = []

    async def sleep(seconds: float) -> None:
        # As the wait begins, the run is halted, as a 401 to a request in flight beside it does.
        asyncio.get_running_loop().call_later(0.05, coder.requester.halt, "the key was refused")
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            cancelled.append(seconds)
            raise

    coder.requester.sleep = sleep
    with pytest.raises(StopRun, match="the key was refused"):
        coder.predict_batch(["[[fault:429]] limited", "a positive one"])
    assert cancelled == [300.0]  # it waited, and was woken
    assert len(api.chat_calls()) == 1  # nothing sent after the halt


def test_a_limit_below_what_the_client_waits_out_stops_nothing_the_client_waited(api, tmp_path):
    api.faults.retry_after_s = 1  # the client waits this out itself, then gives up
    coder = backend(api, tmp_path, max_retries=1, max_retry_after_s=0.5)
    waits = recorded_waits(coder)
    answers = coder.predict_batch(["[[fault:429]] always limited", "a positive one"])
    assert answers.error[0].startswith("API error after 1 retries: RateLimitError (429)")
    assert list(answers.retry) == [True, False] and answers.label[1] == "positive"
    assert waits == []  # the client's wait, not the backend's
