"""The `openai` backend against the project's OpenAI-compatible server, over real HTTP on loopback.

1. Throughput: with 200 ms latency per request and 64 requests in flight, the best a client can do is
   64 / 0.2 = 320 requests/s. Measured: the backend coding documents (cache off), beside a sequential
   loop of the plain `openai` client over the same server, in one run. The server runs in its own
   process so that it does not share the client's interpreter.
2. Faults: 20% of responses fail (5% each of 429 with Retry-After, 500, hangs past the timeout, and
   malformed JSON bodies). Every document must end coded or with an error row naming why, none twice;
   the request count is reported against the document count.

    python benchmarks/api_throughput.py [--documents 4000] [--latency 0.2] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from collections import Counter

from benchmarks_common import write_results

from scalecode import Task, TaskType
from scalecode_openai.backend import OpenAIBackend
from scalecode_openai.server import FakeOpenAI, Faults

TASK = Task(
    name="tone",
    type=TaskType.CLASSIFICATION,
    instructions="The tone of the sentence.",
    labels={"positive": "approves", "negative": "criticises", "neutral": "neither"},
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(latency: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "scalecode_openai.server", "--port", str(port), "--latency", str(latency)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}/v1"
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


def texts(n: int) -> list[str]:
    words = ["positive", "negative", "neutral", "unclear"]
    return [f"document {i}: the committee's report sounds {words[i % 4]} today" for i in range(n)]


def backend_rate(base_url: str, documents: list[str], concurrency: int) -> tuple[float, list[str | None]]:
    params = {"model": "m", "base_url": base_url, "cache": False, "concurrency": concurrency}
    coder = OpenAIBackend(TASK, params)
    coder.load()
    coder.predict_batch(documents[: concurrency * 2])  # connections opened, as in a long run
    started = time.perf_counter()
    answers = coder.predict_batch(documents)
    seconds = time.perf_counter() - started
    coder.close()
    return len(documents) / seconds, list(answers.error or [])


def sequential_rate(base_url: str, documents: list[str]) -> float:
    from openai import OpenAI

    client = OpenAI(api_key="no-key", base_url=base_url)
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": documents[0]}])
    started = time.perf_counter()
    for text in documents:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}], temperature=0)
    return len(documents) / (time.perf_counter() - started)


def fault_run(n: int, concurrency: int) -> dict[str, object]:
    faults = Faults(rate_429=0.05, rate_500=0.05, rate_hang=0.05, rate_malformed=0.05, hang_s=3.0, seed=7)
    documents = texts(n)
    with FakeOpenAI(faults) as api:
        params = {"model": "m", "base_url": api.base_url, "cache": False, "concurrency": concurrency}
        params.update(timeout_s=1.0, max_retries=8)
        coder = OpenAIBackend(TASK, params)
        coder.load()
        started = time.perf_counter()
        answers = coder.predict_batch(documents)
        seconds = time.perf_counter() - started
        coder.close()
        calls = api.chat_calls()
    errors = Counter(e.split(":")[0] for e in answers.error or [] if e)
    labels = answers.label or []
    faults_seen = Counter(c.fault or "ok" for c in calls)
    return {
        "documents": n,
        "answers": len(labels),
        "coded": sum(label is not None for label in labels),
        "error_rows": dict(errors),
        "requests": len(calls),
        "requests_per_document": len(calls) / n,
        "responses_by_fault": dict(faults_seen),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=4000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--fault-documents", type=int, default=1000)
    args = parser.parse_args()

    process, base_url = serve(args.latency)
    try:
        documents = texts(args.documents)
        rate, errors = backend_rate(base_url, documents, args.concurrency)
        loop = sequential_rate(base_url, documents[: args.sequential])
    finally:
        process.terminate()
    bound = args.concurrency / args.latency
    faults = fault_run(args.fault_documents, args.concurrency)

    results = {
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "documents": args.documents,
        "bound_requests_per_s": bound,
        "backend_requests_per_s": rate,
        "fraction_of_bound": rate / bound,
        "backend_errors": sum(e is not None for e in errors),
        "sequential_requests_per_s": loop,
        "speedup_over_sequential": rate / loop,
        "faults": faults,
    }
    lines = [
        "# The openai backend against the project's OpenAI-compatible server (loopback HTTP)",
        "",
        f"Latency {args.latency * 1000:.0f} ms per request, {args.concurrency} in flight: the bound is "
        f"{bound:.0f} requests/s.",
        "",
        "| client | requests/s | of the bound |",
        "|---|---:|---:|",
        f"| scalecode `openai` backend, {args.documents:,} documents | {rate:,.1f} | {rate / bound:.1%} |",
        f"| sequential `openai` client loop, {args.sequential} requests | {loop:,.2f} | {loop / bound:.1%} |",
        "",
        f"The backend is {rate / loop:.0f} times the sequential loop; "
        f"{results['backend_errors']} of its documents ended in error rows.",
        "",
        f"## 20% faulty responses ({args.fault_documents:,} documents)",
        "",
        "5% each of 429 (Retry-After 0.05 s), 500, hangs past the 1 s timeout and malformed JSON bodies.",
        "",
        f"- answers: {faults['answers']:,} for {faults['documents']:,} documents; coded {faults['coded']:,}; "
        f"error rows {faults['error_rows'] or 'none'}",
        f"- requests: {faults['requests']:,} ({faults['requests_per_document']:.2f} per document); "
        f"responses {faults['responses_by_fault']}",
        f"- {faults['seconds']:.1f} s",
        "",
        "Run: `python benchmarks/api_throughput.py`.",
    ]
    write_results("api_throughput", results, lines)


if __name__ == "__main__":
    main()
