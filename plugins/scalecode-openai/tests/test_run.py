"""The `openai` backend through `scalecode plan` and `scalecode run`; the key kept out of every output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from scalecode import Task, TaskType
from scalecode_openai.backend import OpenAIBackend
from scalecode_openai.server import FakeOpenAI, Faults

SECRET = "sk-test-4f9a1c2e7b5d8e3a6c0b1d2e"
LABELS = ["positive", "negative", "neutral"]


def scalecode(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scalecode.cli", *args],
        cwd=cwd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def project(tmp_path):
    words = ["positive", "negative", "neutral", "plain"]
    rows = [
        {"id": f"g{i}", "text": f"sentence {i} sounds {words[i % 4]}", "label": LABELS[i % 4 % 3]}
        for i in range(40)
    ]
    pl.DataFrame(rows).write_csv(tmp_path / "gold.csv")
    pl.DataFrame([{"id": f"c{i}", "text": f"corpus {i} {words[i % 4]}"} for i in range(50)]).write_parquet(
        tmp_path / "corpus.parquet"
    )
    return tmp_path


def job(project: Path, base_url: str, **extra: object) -> None:
    params = {
        "model": "test-model",
        "base_url": base_url,
        "api_key": {"$env": "TEST_API_KEY"},
        "concurrency": 8,
    }
    params.update(price={"input": 2.5, "output": 10.0})
    params.update(extra)
    (project / "job.yaml").write_text(
        textwrap.dedent(f"""
        task:
          type: classification
          instructions: The tone of the sentence.
          labels: {{positive: approves, negative: criticises, neutral: neither}}
        data:
          gold: {{path: gold.csv, label_column: label}}
          corpus: {{path: corpus.parquet}}
        backends:
          - name: gpt
            plugin: openai
            params: {json.dumps(params)}
        evaluation: {{test_size: 0.5, seed: 1, bootstrap: {{n: 100}}}}
        output: {{dir: run}}
        """)
    )


@pytest.fixture
def env():
    return {**os.environ, "TEST_API_KEY": SECRET, "PYTHONWARNINGS": "ignore"}


@pytest.mark.slow
def test_plan_then_run_then_rerun_sends_each_request_once_and_never_leaks_the_key(project, env):
    with FakeOpenAI() as api:
        job(project, api.base_url)
        plan = scalecode("plan", "job.yaml", cwd=project, env=env)
        assert plan.returncode == 0, plan.stderr
        assert "| gpt | gold test | 20 | 20 | 0 |" in plan.stdout
        assert "| gpt | corpus | 50 | 50 | 0 |" in plan.stdout
        assert api.calls == []  # planning sends nothing

        first = scalecode("run", "job.yaml", "--num-cpus", "2", "--no-progress", cwd=project, env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        assert len(api.chat_calls()) == 70
        assert all(c.headers.get("authorization") == f"Bearer {SECRET}" for c in api.chat_calls())

        run = project / "run"
        metrics = json.loads((run / "metrics.json").read_text())
        spent = metrics["backends"]["gpt"]["spending"]
        assert spent["cost_usd"] > 0 and spent["input_tokens"] > 0 and spent["cached_documents"] == 0
        assert metrics["backends"]["gpt"]["metrics"]["accuracy"]["value"] > 0.5
        coded = pl.read_parquet(run / "predictions" / "corpus" / "gpt")
        assert coded.height == 50 and coded["error"].null_count() == 50
        assert {"input_tokens", "output_tokens", "cost_usd", "cached", "request_key"} <= set(coded.columns)
        corpus_cost = metrics["corpus"][0]["cost_usd"]
        assert corpus_cost == pytest.approx(coded["cost_usd"].sum()) and corpus_cost > 0
        assert "cost $" in first.stdout

        plan = scalecode("plan", "job.yaml", cwd=project, env=env)
        assert "| gpt | corpus | 50 | 50 | 50 |" in plan.stdout  # all in the cache now
        assert "Estimated cost of new requests: $0.0000" in plan.stdout

        api.reset()
        (run / "predictions").rename(project / "first-predictions")
        again = scalecode("run", "job.yaml", "--num-cpus", "2", "--no-progress", cwd=project, env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert api.chat_calls() == []  # a second run sends zero requests
        assert (
            pl.read_parquet(run / "predictions" / "corpus" / "gpt")["label"].to_list()
            == coded["label"].to_list()
        )

    # The key appears in no output, manifest, cache or log.
    for path in [p for p in project.rglob("*") if p.is_file()]:
        assert SECRET.encode() not in path.read_bytes(), path
    for output in (first.stdout, first.stderr, again.stdout, again.stderr, plan.stdout):
        assert SECRET not in output


def test_plan_counts_the_corpus_only_for_the_backends_that_will_code_it(project, env):
    with FakeOpenAI() as api:
        job(project, api.base_url)
        text = (project / "job.yaml").read_text()
        (project / "job.yaml").write_text(
            text.replace("output: {dir: run}", "output: {dir: run, corpus_backends: best}")
        )
        plan = scalecode("plan", "job.yaml", cwd=project, env=env)
        assert plan.returncode == 0, plan.stderr
        gold = next(line for line in plan.stdout.splitlines() if line.startswith("| gpt | gold test |"))
        assert "| gpt | corpus, if best | 50 | 50 | 0 |" in plan.stdout
        # Only the winner codes the corpus: the total is the gold's, the corpus row an alternative.
        assert f"Estimated cost of new requests: ${float(gold.split('|')[-2]):,.4f}" in plan.stdout

        (project / "job.yaml").write_text(
            text.replace("output: {dir: run}", "output: {dir: run, corpus_backends: []}")
        )
        plan = scalecode("plan", "job.yaml", cwd=project, env=env)
        assert plan.returncode == 0, plan.stderr
        assert "| gpt | corpus" not in plan.stdout

        zero = scalecode("plan", "job.yaml", "--sample", "0", cwd=project, env=env)
        assert zero.returncode == 2 and "--sample" in zero.stderr and "Traceback" not in zero.stderr
        assert api.calls == []


@pytest.mark.slow
def test_a_budget_stops_the_run_cleanly_and_the_same_command_resumes_it(project, env):
    # About 4 cents a request against a dollar a run: the job takes three or four runs to finish.
    with FakeOpenAI(Faults(latency_s=0.02)) as api:
        job(project, api.base_url, price={"input": 600.0, "output": 600.0}, budget_usd=1.0, concurrency=2)
        runs = []
        while not runs or runs[-1].returncode != 0:
            runs.append(
                scalecode("run", "job.yaml", "--num-cpus", "2", "--no-progress", cwd=project, env=env)
            )
            assert len(runs) <= 8, runs[-1].stderr[-2000:]
        stopped = runs[0]
        assert stopped.returncode == 1
        assert "budget of $1.00 reached" in stopped.stderr and "Traceback" not in stopped.stderr
        assert len(api.chat_calls()) == 70  # every request sent once over all the runs: none paid twice
        coded = pl.read_parquet(project / "run" / "predictions" / "corpus" / "gpt")
        assert coded.height == 50 and coded["error"].null_count() == 50


@pytest.mark.slow
def test_a_run_stopped_by_its_budget_finishes_once_the_budget_is_raised(project, env):
    """What the budget stop tells the user to do: raise budget_usd; the directory is the same run."""
    with FakeOpenAI(Faults(latency_s=0.02)) as api:
        job(project, api.base_url, price={"input": 600.0, "output": 600.0}, budget_usd=1.0, concurrency=2)
        stopped = scalecode("run", "job.yaml", "--num-cpus", "2", "--no-progress", cwd=project, env=env)
        assert stopped.returncode == 1 and "with a larger budget_usd" in stopped.stderr, stopped.stderr[
            -2000:
        ]
        paid = len(api.chat_calls())
        # The gold was coded before the corpus ran out of budget: its comparison is written.
        metrics = json.loads((project / "run" / "metrics.json").read_text())
        assert metrics["backends"]["gpt"]["n_scored"] == 20 and metrics["corpus"] == []

        job(project, api.base_url, price={"input": 600.0, "output": 600.0}, budget_usd=100.0, concurrency=4)
        raised = scalecode("run", "job.yaml", "--num-cpus", "2", "--no-progress", cwd=project, env=env)
        assert raised.returncode == 0, raised.stderr[-2000:]
        assert paid < 70 and len(api.chat_calls()) == 70  # the rest sent, nothing sent twice
        coded = pl.read_parquet(project / "run" / "predictions" / "corpus" / "gpt")
        assert coded.height == 50 and coded["error"].null_count() == 50


@pytest.mark.slow
def test_documents_that_failed_while_the_server_was_down_are_coded_by_the_next_run(project, env):
    """Error rows for passing failures are written, and the same command codes those documents later."""
    with FakeOpenAI(Faults(rate_500=0.3, seed=5)) as api:
        job(project, api.base_url, max_retries=0)
        first = scalecode("run", "job.yaml", "--num-cpus", "2", "--no-progress", cwd=project, env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        run = project / "run"
        corpus_dir, gold_file = (
            run / "predictions" / "corpus" / "gpt",
            run / "predictions" / "gold" / "gpt.parquet",
        )
        failed = pl.read_parquet(corpus_dir).filter(pl.col("error").is_not_null())
        gold_failed = pl.read_parquet(gold_file).filter(pl.col("error").is_not_null())
        assert failed.height > 0 and gold_failed.height > 0
        assert failed["retry"].all() and failed["error"].str.contains("500").all()
        assert "Errors the next run codes again: gpt:" in first.stdout
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["backends"]["gpt"]["errors_to_retry"] == gold_failed.height
        assert "of them coded again by the next run" in (run / "comparison.md").read_text()

        api.faults = Faults()  # the server is back
        api.reset()
        second = scalecode("run", "job.yaml", "--num-cpus", "2", "--no-progress", cwd=project, env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        assert len(api.chat_calls()) == failed.height + gold_failed.height  # only the failed, once each
        rows = pl.read_parquet(corpus_dir)
        assert rows.height == 50 + failed.height  # the error rows stay, older than their documents' codes
        current = rows.sort("coded_at").unique("id", keep="last")
        assert current.height == 50 and current["error"].null_count() == 50
        gold = pl.read_parquet(gold_file)
        assert gold.height == 20 and gold["error"].null_count() == 20 and gold["id"].n_unique() == 20
        metrics = json.loads((run / "metrics.json").read_text())
        assert (
            metrics["backends"]["gpt"]["n_errors"] == 0
            and "errors_to_retry" not in metrics["backends"]["gpt"]
        )


TONE = Task(name="tone", type=TaskType.CLASSIFICATION, labels=LABELS)


def tone_texts(n: int) -> list[str]:
    return [f"item {i} is {LABELS[i % 3]}" for i in range(n)]


def batch_backend(api: FakeOpenAI, work_dir: Path) -> OpenAIBackend:
    """A loaded openai backend in batch mode, keeping its batch records in ``work_dir``."""
    params = {"model": "m", "base_url": api.base_url, "mode": "batch", "batch_poll_s": 0.05}
    backend = OpenAIBackend(TONE, params, work_dir=work_dir)
    backend.load()
    return backend


def test_batch_mode_restarted_between_upload_and_download_pays_once(tmp_path):
    texts = tone_texts(12)
    with FakeOpenAI(Faults(batch_delay_s=0.5)) as api:
        first = batch_backend(api, tmp_path)

        async def killed(*args, **kwargs):  # the run dies while it waits for the batch
            raise KeyboardInterrupt

        first.requester.client.batches.retrieve = killed
        with pytest.raises(KeyboardInterrupt):
            first.predict_batch(texts)
        state = json.loads(next((tmp_path / "batches").glob("*.json")).read_text())
        assert {"file_id", "batch_id"} <= set(state)

        second = batch_backend(api, tmp_path)
        answers = second.predict_batch(texts)
        assert list(answers.label) == [LABELS[i % 3] for i in range(12)]
        uploads = [c for c in api.calls if c.method == "POST" and c.path.startswith("/v1/files")]
        created = [c for c in api.calls if c.method == "POST" and c.path == "/v1/batches"]
        assert len(uploads) == 1 and len(created) == 1  # picked up, not paid twice
        assert api.chat_calls() == []  # every answer came through the batch

        api.reset()
        third = batch_backend(api, tmp_path)
        assert list(third.predict_batch(texts).label) == list(answers.label)
        assert api.calls == []  # answered from the cache


def test_a_batch_that_ends_without_answers_is_submitted_anew_by_the_next_run(tmp_path):
    texts = tone_texts(6)
    with FakeOpenAI(Faults(batch_delay_s=5.0)) as api:
        first = batch_backend(api, tmp_path)
        client = first.requester.client
        retrieve = client.batches.retrieve

        async def cancelled(batch_id, **kwargs):  # someone cancels the batch on the provider's site
            await client.batches.cancel(batch_id)
            return await retrieve(batch_id, **kwargs)

        client.batches.retrieve = cancelled
        failed = first.predict_batch(texts)
        assert failed.label == [None] * 6 and all(
            "ended cancelled without answering it" in e for e in failed.error
        )
        assert list(failed.retry) == [True] * 6
        (record,) = (tmp_path / "batches").glob("*.json")
        assert ".batch_" in record.name  # kept under the batch's id, no longer picked up

        second = batch_backend(api, tmp_path)
        api.faults = Faults()  # no delay: the new batch completes on its first look
        assert list(second.predict_batch(texts).label) == [LABELS[i % 3] for i in range(6)]
        created = [c for c in api.calls if c.method == "POST" and c.path == "/v1/batches"]
        assert len(created) == 2


def test_requests_a_batch_refuses_are_not_marked_to_retry(tmp_path, monkeypatch):
    import scalecode_openai.server as fake_server

    # Every request refused with a 400 for itself (its document too long), not for an option.
    monkeypatch.setattr(fake_server, "refusal", lambda body, faults: "maximum context length exceeded")
    with FakeOpenAI() as api:
        answers = batch_backend(api, tmp_path).predict_batch(tone_texts(3))
    assert answers.label == [None] * 3 and list(answers.retry) == [False] * 3
    (record,) = (tmp_path / "batches").glob("*.json")
    assert ".batch_" not in record.name  # kept: asked again, it polls this batch and submits none


def test_a_format_a_batch_refuses_stops_the_run_naming_the_option(tmp_path):
    """Batch requests cannot step down from a schema: every request of every batch would be refused."""
    from scalecode.errors import StopRun

    with (
        FakeOpenAI(Faults(schema_support=False)) as api,
        pytest.raises(StopRun, match=r"refuses the option 'structured_output'"),
    ):
        batch_backend(api, tmp_path).predict_batch(tone_texts(3))
