"""``scalecode plan`` never prices a corpus below what the run will spend because of how it sampled.

The plan estimates a large corpus from a sample and scales it up. It used to take the first
``--sample`` documents and scale every field, the cached requests too: a corpus grown by appending
(the incremental use case) has at its front exactly the documents an earlier run paid for, so the plan
said $0 for a corpus whose every new document would be sent. Empty texts, which the run never sends,
inflated the scale; documents already coded in the run directory, which the run skips, were priced;
and planning created the run directory and a response cache in it.

These tests use the real openai backend against the fake server: an earlier run's answers are put in
the cache by coding documents with the backend itself, as a run does.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalecode.config import Job, load_job
from scalecode.corpus import doc_hashes
from scalecode.plan import PlanRow, Sample, plan_job, render
from scalecode.plugins import Plugins, load_plugins
from scalecode.runner import spec_for
from scalecode_openai.server import FakeOpenAI

ALLOW = ("scalecode-openai",)


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return load_plugins(allow=ALLOW)


@pytest.fixture(scope="module")
def api():
    with FakeOpenAI() as running:
        yield running


def texts(n: int) -> list[str]:
    """``n`` documents of one length, so that each request costs the same."""
    return [f"document {i:05d} says something about the economy and taxes" for i in range(n)]


def write_job(folder: Path, plugins: Plugins, base_url: str, rows: list[str | None], **params: object) -> Job:
    pl.DataFrame(
        {"id": [f"d{i}" for i in range(len(rows))], "text": rows}, schema={"id": pl.String, "text": pl.String}
    ).write_csv(folder / "corpus.csv")
    options = {"model": "test-model", "base_url": base_url, "price": {"input": 0.15, "output": 0.6}, **params}
    (folder / "job.yaml").write_text(
        textwrap.dedent(f"""\
        task: {{type: classification, labels: {{pos: positive, neg: negative}}}}
        data: {{corpus: {{path: {folder / "corpus.csv"}}}}}
        backends:
          - {{name: gpt, plugin: openai, params: {options}}}
        output: {{dir: {folder / "run"}}}
        """)
    )
    return load_job(folder / "job.yaml", plugins)


def corpus_row(job: Job, plugins: Plugins, out: Path, sample: int = 10_000) -> PlanRow:
    [row] = [r for r in plan_job(job, plugins, out, allow=ALLOW, sample=sample) if r.part == "corpus"]
    assert row.estimate is not None
    return row


def pay_for(job: Job, out: Path, documents: list[str]) -> None:
    """Code ``documents`` with the job's backend as a run over ``out`` does: their answers are cached."""
    [backend] = job.backends
    coder = spec_for(backend, job.task, None, None, ALLOW, out / "work" / backend.name).build()
    coder.load()
    try:
        coder.predict_batch(documents)
    finally:
        coder.close()


def code_in_shards(out: Path, ids: list[str], documents: list[str]) -> None:
    """A shard of the backend's corpus output holding these documents, as a run writes one."""
    folder = out / "predictions" / "corpus" / "gpt"
    folder.mkdir(parents=True, exist_ok=True)
    rows = pa.table(
        {
            "id": ids,
            "label": ["pos"] * len(ids),
            "error": pa.nulls(len(ids), pa.string()),
            "doc_hash": doc_hashes(pa.array(ids), pa.array(documents)),
            "coded_at": pa.array([datetime.now(timezone.utc)] * len(ids), pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(rows, folder / "corpus.csv.0000000000.000000000000-000000000099.parquet")


def test_a_corpus_grown_by_appending_is_not_priced_below_the_run_from_a_sample(tmp_path, plugins, api):
    """The reviewer's case: the first documents were paid for by an earlier run, the rest are new."""
    documents = texts(200)
    job = write_job(tmp_path, plugins, api.base_url, documents)
    out = tmp_path / "run"
    pay_for(job, out, documents[:20])

    exact = corpus_row(job, plugins, out).estimate  # the sample holds the whole corpus
    assert exact is not None and exact.cost_usd is not None
    assert (exact.documents, exact.requests, exact.cached) == (200, 200, 20)

    sampled = corpus_row(job, plugins, out, sample=20).estimate
    assert sampled is not None and sampled.cost_usd is not None
    assert sampled.documents == 200 and sampled.requests == 200
    assert sampled.cached <= 20  # never more than the cache is known to hold
    assert sampled.cost_usd >= exact.cost_usd * (1 - 1e-9), (sampled, exact)


def test_empty_texts_are_not_priced_and_do_not_scale_the_estimate(tmp_path, plugins, api):
    rows: list[str | None] = [t if i % 2 == 0 else " " for i, t in enumerate(texts(100))]
    rows[1] = None
    job = write_job(tmp_path, plugins, api.base_url, rows)
    whole = corpus_row(job, plugins, tmp_path / "run")
    assert whole.estimate is not None
    assert (whole.estimate.documents, whole.estimate.requests) == (50, 50)  # what the run sends
    sampled = corpus_row(job, plugins, tmp_path / "run", sample=10)
    assert sampled.estimate is not None
    assert (sampled.estimate.documents, sampled.estimate.requests) == (50, 50)
    assert sampled.estimate.cost_usd == pytest.approx(whole.estimate.cost_usd)

    text = render([whole])
    assert "50 of the corpus's 100 documents have no text to send" in text
    assert "first" not in text


def test_documents_already_coded_in_the_run_directory_cost_nothing(tmp_path, plugins, api):
    """With the cache off only the shards tell: the run skips what they hold, an edited text aside."""
    documents = texts(100)
    job = write_job(tmp_path, plugins, api.base_url, documents, cache=False)
    out = tmp_path / "run"
    fresh = corpus_row(job, plugins, out).estimate
    assert fresh is not None and fresh.cost_usd is not None and fresh.cached == 0

    ids = [f"d{i}" for i in range(60)]
    code_in_shards(out, ids, ["an older text of d0", *documents[1:60]])  # d0 was edited since
    row = corpus_row(job, plugins, out)
    assert row.estimate is not None and row.estimate.cost_usd is not None
    assert (row.estimate.documents, row.estimate.requests, row.estimate.cached) == (100, 100, 59)
    assert row.estimate.cost_usd == pytest.approx(fresh.cost_usd * 41 / 100)
    assert "59 already coded" in render([row])

    sampled = corpus_row(job, plugins, out, sample=10).estimate
    assert sampled is not None and sampled.cost_usd is not None
    assert (sampled.documents, sampled.requests, sampled.cached) == (100, 100, 59)
    assert sampled.cost_usd == pytest.approx(fresh.cost_usd * 41 / 100)


def test_the_plan_says_what_it_sampled_and_how_it_scaled(tmp_path, plugins, api):
    job = write_job(tmp_path, plugins, api.base_url, texts(200))
    row = corpus_row(job, plugins, tmp_path / "run", sample=20)
    text = render([row])
    assert "estimated from a sample of 20 of the 200 documents to code" in text
    assert "the same 20 on every plan" in text
    assert "an estimate, not a bound" in text  # tokens come from the sample too
    assert "first" not in text
    # Spread over the corpus, not its front: the sample is the same on every plan.
    again = corpus_row(job, plugins, tmp_path / "run", sample=20)
    assert again == row


def test_planning_writes_nothing(tmp_path, plugins, api):
    job = write_job(tmp_path, plugins, api.base_url, texts(30))
    corpus_row(job, plugins, tmp_path / "run", sample=10)
    assert not (tmp_path / "run").exists()


def test_the_sample_is_the_documents_of_smallest_hash_however_the_corpus_is_read():
    """Spread over the corpus, the same whatever the chunks, and in corpus order for the backend."""
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 2**63, 1_000).astype(np.uint64)
    words = pa.array([f"text {i}" for i in range(1_000)])
    expected = [f"text {i}" for i in sorted(np.argsort(keys)[:50])]
    for chunk in (1, 7, 64, 1_000):
        sample = Sample(50)
        for start in range(0, 1_000, chunk):
            part = slice(start, start + chunk)
            order = np.arange(start, min(start + chunk, 1_000))
            sample.offer(keys[part], order, words[part], np.ones(len(order), dtype=bool))
        assert sample.offered == 1_000 and len(sample) == 50
        assert sample.texts == expected


def test_a_text_repeated_across_batches_is_priced_once_a_batch_without_a_cache(tmp_path, plugins, api):
    """The run asks a repeated text once per batch; with no cache, later batches ask it again."""
    job = write_job(tmp_path, plugins, api.base_url, ["the same text"] * 200, cache=False, batch_size=10)
    estimate = corpus_row(job, plugins, tmp_path / "run").estimate
    assert (estimate.documents, estimate.requests) == (200, 20)


def test_requests_of_several_documents_are_formed_within_a_batch(tmp_path, plugins, api):
    """Four documents a request, batches of five: each batch sends two requests, one half full."""
    job = write_job(tmp_path, plugins, api.base_url, texts(60), docs_per_request=4, batch_size=5)
    estimate = corpus_row(job, plugins, tmp_path / "run").estimate
    assert (estimate.documents, estimate.requests) == (60, 24)


def test_a_corpus_of_blank_texts_says_why_nothing_is_sent(tmp_path, plugins, api):
    job = write_job(tmp_path, plugins, api.base_url, [" ", "", None])
    row = corpus_row(job, plugins, tmp_path / "run")
    assert (row.estimate.documents, row.estimate.requests, row.estimate.cost_usd) == (0, 0, 0.0)
    assert "3 of the corpus's 3 documents have no text to send" in render([row])


def test_documents_without_text_an_earlier_run_wrote_error_rows_for_count_as_coded(tmp_path, plugins, api):
    """The run skips them as it skips any document coded: their error rows are in the output."""
    rows: list[str | None] = [*texts(3), " "]
    job = write_job(tmp_path, plugins, api.base_url, rows)
    out = tmp_path / "run"
    code_in_shards(out, ["d0", "d3"], [rows[0], " "])
    row = corpus_row(job, plugins, out)
    assert row.corpus is not None and (row.corpus.unsent, row.corpus.coded, row.corpus.new) == (0, 2, 2)
    assert "no text to send" not in render([row])
