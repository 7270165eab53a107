"""``scalecode plan``: what a job would send and spend, before anything is sent.

For each backend that pays per call (it implements ``Backend.estimate``), the estimate covers the
gold test split and the corpus. The corpus is read through once, streaming, to count what the run
will do with each document: a document with no text to send (null, blank, not UTF-8, too long,
unparsable) gets an error row and is never sent; one already coded in the run directory's output
for the backend is skipped, and costs nothing (it is counted as cached); the rest are the documents
to code. Where they are more than ``sample``, the estimate is made on a sample of them: those of
smallest document hash, a uniform sample spread over every file and row, the same on every plan.
Requests and tokens are scaled to all the documents to code; requests in the backend's cache (from
an earlier run in the same run directory) are counted only among the sampled documents, and the
others are priced as new requests: a cache fills unevenly (a corpus grown by appending has at its
front exactly the documents an earlier run paid for), so scaling what the sample finds cached could
price the corpus below what the run spends. (Tokens per document are the sample's: a sampled cost
is an estimate, not a bound.)

A plan creates no run directory: a backend without a work folder in the run directory yet is
given an empty one elsewhere, removed afterwards. A backend that looks requests up in its cache must
not create the cache where there is none (the openai backend does not).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scalecode.backend import Backend, Estimate
from scalecode.config import Job, TableConfig, redact_text
from scalecode.corpus import coded_index, doc_hashes, in_sorted
from scalecode.data import inspect_corpus
from scalecode.inference import MAX_TEXT_CHARS
from scalecode.plugins import Plugins
from scalecode.readers import Reader
from scalecode.runner import spec_for, split_job_gold
from scalecode.sources import CORRUPT, ID, RAW, TEXT, Piece, SourceFile, read_piece

SAMPLE = 10_000
_READ_ROWS = 65_536  # corpus rows read at a time: memory stays flat however large the corpus


@dataclass(frozen=True)
class CorpusCount:
    """What the run would do with the corpus's documents for one backend, counted over all of them."""

    documents: int  # in the corpus
    unsent: int  # with no text to send: error rows, never sent
    coded: int  # already coded in ``folder``: skipped by the run, counted as cached
    new: int  # the documents to code: what the run sends
    sampled: int  # of ``new``, the documents the estimate was made on (all of them, or a sample)
    coded_sampled: int  # of ``coded``, the documents their requests and tokens were estimated on
    folder: str  # the backend's corpus output in the run directory


@dataclass(frozen=True)
class PlanRow:
    backend: str
    part: str  # "gold test" or "corpus"
    estimate: Estimate | None  # None: runs locally, costs nothing per call
    corpus: CorpusCount | None = None  # of a corpus row: how its documents were counted and sampled
    # With ``corpus_backends: best`` each backend's corpus row is what it would cost if it wins:
    # one of them is spent, so none is added to the total.
    if_best: bool = False


class Sample:
    """Up to ``size`` of the documents offered: those of smallest doc hash. The hash (of id and text)
    is as good as random, so they are a uniform sample of all the documents offered, from every file
    and row and not the corpus's front, and the same on every plan of the same corpus."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.offered = 0
        self._keys = np.empty(0, np.uint64)
        self._order = np.empty(0, np.int64)
        self._texts: list[str] = []

    def offer(self, keys: np.ndarray, order: np.ndarray, texts: pa.Array, mask: np.ndarray) -> None:
        """Offer the documents ``mask`` picks of a chunk: their doc hashes, places and texts."""
        self.offered += int(mask.sum())
        if len(self._keys) >= self.size:
            # Only a smaller hash displaces a kept document; the other texts are never made str.
            mask = mask & (keys < self._keys.max())
        if not mask.any():
            return
        keys = np.concatenate([self._keys, keys[mask]])
        order = np.concatenate([self._order, order[mask]])
        kept = self._texts + texts.filter(pa.array(mask)).to_pylist()
        if len(keys) > self.size:
            smallest = np.argpartition(keys, self.size - 1)[: self.size]
            keys, order, kept = keys[smallest], order[smallest], [kept[i] for i in smallest]
        self._keys, self._order, self._texts = keys, order, kept

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def texts(self) -> list[str]:
        """In corpus order, as the run sends them (a request of several documents takes neighbours)."""
        return [self._texts[i] for i in np.argsort(self._order, kind="stable")]


@dataclass
class Survey:
    """One backend's view of the corpus as it is read: what it coded already (``coded_index``), and
    samples of the documents it will code and of those it will skip."""

    index: np.ndarray  # the doc hashes coded already, sorted (``corpus.coded_index``)
    new: Sample
    coded: Sample
    unsent: int = 0  # documents with no text to send, not coded yet: the run writes their error rows
    coded_unsent: int = 0  # documents with no text whose error rows are there already: skipped


def _strings(column: pa.Array) -> pa.Array:
    """Texts as strings; one that is not valid UTF-8 (CSV gives bytes) null, as the run finds it."""
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        return column.cast(pa.string())
    try:  # the whole chunk at once when it is all valid UTF-8, the usual case
        return column.cast(pa.string())
    except pa.ArrowInvalid:
        decoded: list[str | None] = []
        for value in column.to_pylist():
            try:
                decoded.append(None if value is None else value.decode("utf-8"))
            except UnicodeDecodeError:
                decoded.append(None)
        return pa.array(decoded, pa.string())


def sendable(rows: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """A chunk's texts as strings, and which of them the run sends to a backend: not a row that could
    not be parsed, nor a null, undecodable, blank or too long text (``inference.code_batch`` gives
    those error rows)."""
    texts = _strings(rows.column(TEXT).combine_chunks())
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(texts)), 0)
    too_long = pc.greater(pc.utf8_length(texts), MAX_TEXT_CHARS)
    unsent = pc.fill_null(pc.or_(blank, too_long), True)  # null: no text, or not UTF-8
    send = pc.and_(pc.invert(unsent), pc.is_null(rows.column(CORRUPT).combine_chunks()))
    return texts, np.asarray(send.to_numpy(zero_copy_only=False), dtype=bool)


def survey_corpus(
    config: TableConfig, readers: Sequence[Reader], files: Sequence[SourceFile], surveys: Mapping[str, Survey]
) -> None:
    """Read the corpus once, offering each backend's samples their documents and counting, for each,
    those with no text to send.

    Every document is read, as the run reads it, because what is blank or already coded can be
    anywhere: only then are the counts exact and the sample uniform. Reading and hashing cost a few
    seconds a million documents; only the sampled texts are kept.
    """
    seen = 0
    for file in files:
        for rows in read_piece(Piece(file), config, readers, _READ_ROWS):
            texts, send = sendable(rows)
            # The hash the run skips coded documents by (``corpus.read_dataset``), computed alike.
            keys = doc_hashes(
                rows.column(ID).combine_chunks(),
                rows.column(TEXT).combine_chunks(),
                rows.column(RAW).combine_chunks(),
            ).to_numpy()
            order = np.arange(seen, seen + len(rows), dtype=np.int64)
            seen += len(rows)
            for survey in surveys.values():
                coded = in_sorted(keys, survey.index)
                survey.new.offer(keys, order, texts, send & ~coded)
                survey.coded.offer(keys, order, texts, send & coded)
                # An error row written by an earlier run counts as coded there: the run skips it too.
                survey.unsent += int((~send & ~coded).sum())
                survey.coded_unsent += int((~send & coded).sum())


def _scale(estimate: Estimate, documents: int) -> Estimate:
    """Documents, requests and tokens of ``documents`` documents like those ``estimate`` is of."""
    if estimate.documents in (0, documents):
        return estimate
    factor = documents / estimate.documents
    return replace(
        estimate,
        documents=documents,
        requests=round(estimate.requests * factor),
        input_tokens=round(estimate.input_tokens * factor),
        output_tokens=round(estimate.output_tokens * factor),
    )


def _extrapolate(sample: Estimate, documents: int) -> Estimate:
    """The estimate for ``documents`` documents from that of a uniform sample of them.

    Requests and tokens scale; cached requests do not: only the sample's are known to be in the
    cache, and a cache fills unevenly. Every other request is priced as new, at what the sample's
    new requests cost on average. Where all the sample's requests are cached, that
    price is unknown.
    """
    scaled = _scale(sample, documents)
    if scaled is sample:
        return sample
    new = sample.requests - sample.cached
    if sample.cost_usd is None:
        return scaled
    if not new:
        rest = documents - sample.documents
        note = (
            f"every sampled request is in the cache: what the other {rest:,} documents to code cost "
            f"is unknown; --sample {documents} prices them all"
        )
        return replace(scaled, cost_usd=None, notes=(*scaled.notes, note))
    return replace(scaled, cost_usd=sample.cost_usd / new * (scaled.requests - sample.cached))


def _as_coded(sample: Estimate, documents: int) -> Estimate:
    """Documents the run skips, already coded: their requests count as cached, and cost nothing."""
    scaled = _scale(sample, documents)
    cost = None if scaled.cost_usd is None else 0.0
    return replace(scaled, cached=scaled.requests, cost_usd=cost)


def _add(a: Estimate, b: Estimate) -> Estimate:
    return Estimate(
        documents=a.documents + b.documents,
        requests=a.requests + b.requests,
        cached=a.cached + b.cached,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cost_usd=None if a.cost_usd is None or b.cost_usd is None else a.cost_usd + b.cost_usd,
        notes=tuple(dict.fromkeys((*a.notes, *b.notes))),
    )


NOTHING = Estimate(cost_usd=0.0)


def in_batches(backend: Backend, texts: Sequence[str]) -> Estimate | None:
    """``backend.estimate`` of ``texts`` a batch at a time, as the run hands them over: requests of
    several documents are formed within a batch, and a text is asked once per batch (the cache, if
    any, answers it in later batches), so one estimate over all the texts could count fewer
    requests than the run sends.

    Batches are of the backend's batch size, the largest the run makes; it makes them smaller on a
    small corpus or with many replicas, and then, with several documents a request, a few more
    requests than here.
    """
    size = max(1, backend.resources().batch_size)
    total = backend.estimate(texts[:size])
    for start in range(size, len(texts), size):
        part = backend.estimate(texts[start : start + size])
        if total is None or part is None:
            return None
        total = _add(total, part)
    return total


def corpus_estimate(backend: Backend, survey: Survey) -> Estimate | None:
    """What coding the corpus costs: the documents to code, estimated on their sample and scaled, and
    those already coded, which are free."""
    estimate = in_batches(backend, survey.new.texts)
    if estimate is None:
        return None
    estimate = _extrapolate(estimate, survey.new.offered)
    coded = in_batches(backend, survey.coded.texts) if survey.coded.offered else None
    return estimate if coded is None else _add(estimate, _as_coded(coded, survey.coded.offered))


def _prices_calls(backend: Backend) -> bool:
    """Whether the backend estimates what it costs; only then is the corpus read through for it."""
    return type(backend).estimate is not Backend.estimate


def _work_dir(out: Path, name: str, scratch: Path) -> Path:
    """The backend's work folder in the run directory, where a run made one (its cache is there);
    else an empty one in ``scratch``: a backend that opens its cache creates the file, and planning
    must leave nothing behind."""
    work = out / "work" / name
    return work if work.is_dir() else scratch / name


def plan_job(
    job: Job,
    plugins: Plugins,
    out: Path,
    *,
    plugins_dir: str | None = None,
    allow: tuple[str, ...] | None = None,
    sample: int = SAMPLE,
) -> list[PlanRow]:
    config = job.config
    task = job.task
    test_texts: list[str] = []
    if config.data.gold is not None:
        # The run directory's own split where it has one (``out``: output.dir, or the one given with
        # --output, as ``run --output`` codes): the documents the run will code.
        _, _, test, task = split_job_gold(job, plugins.readers, out)
        test_texts = test.texts
    table = config.data.corpus
    corpus = inspect_corpus(table, plugins.readers) if table is not None else None
    chosen = config.output.corpus_backends
    part = "corpus, if best" if chosen == "best" else "corpus"
    rows: list[PlanRow] = []
    with tempfile.TemporaryDirectory(prefix="scalecode-plan-") as scratch:
        instances = {
            b.name: spec_for(b, task, None, plugins_dir, allow, _work_dir(out, b.name, Path(scratch))).build()
            for b in job.backends
            if b.train is None  # trained backends run locally
        }
        folders = {name: out / "predictions" / "corpus" / name for name in instances}
        surveys = {
            name: Survey(coded_index(folders[name]), Sample(sample), Sample(sample))
            for name, instance in instances.items()
            if (chosen in ("all", "best") or name in chosen) and _prices_calls(instance)
        }
        if table is not None and corpus is not None and surveys:
            survey_corpus(table, plugins.readers, corpus.files, surveys)
        for backend in job.backends:
            instance = instances.get(backend.name)
            if instance is None:
                rows.append(PlanRow(backend.name, "all", None))
                continue
            if test_texts:
                rows.append(PlanRow(backend.name, "gold test", in_batches(instance, test_texts)))
            codes_corpus = chosen in ("all", "best") or backend.name in chosen
            if corpus is None or not corpus.n_documents or not codes_corpus:
                continue
            survey = surveys.get(backend.name)
            if survey is None:
                rows.append(PlanRow(backend.name, part, None, if_best=chosen == "best"))
                continue
            count = CorpusCount(
                documents=corpus.n_documents,
                unsent=survey.unsent,
                coded=survey.coded.offered + survey.coded_unsent,
                new=survey.new.offered,
                sampled=len(survey.new),
                coded_sampled=len(survey.coded),
                folder=str(folders[backend.name]),
            )
            # No document with a text: the run sends nothing, and the notes say why.
            estimate = (
                corpus_estimate(instance, survey) if survey.new.offered + survey.coded.offered else NOTHING
            )
            rows.append(PlanRow(backend.name, part, estimate, count, if_best=chosen == "best"))
    return rows


def corpus_notes(backend: str, count: CorpusCount) -> list[str]:
    """What a corpus row counts, and how much of it was sampled and scaled."""
    notes = []
    if count.unsent:
        notes.append(
            f"{backend}: {count.unsent:,} of the corpus's {count.documents:,} documents have no text to "
            "send (null, blank, not UTF-8, too long or unparsable): error rows, never sent"
        )
    if count.coded:
        estimated = (
            f"; their requests and tokens scaled from {count.coded_sampled:,} of them"
            if count.coded_sampled < count.coded
            else ""
        )
        notes.append(
            f"{backend}: {count.coded:,} already coded in {count.folder} (the run skips them): counted "
            f"as cached{estimated}"
        )
    if count.sampled < count.new:
        rest = count.new - count.sampled
        notes.append(
            f"{backend}: corpus estimated from a sample of {count.sampled:,} of the {count.new:,} "
            f"documents to code (those of smallest document hash, spread over the whole corpus: the "
            f"same {count.sampled:,} on every plan), requests and tokens scaled to all {count.new:,}; "
            f"only the sample's requests are looked up in the cache, and the other {rest:,} documents "
            "are priced as new requests, though the cache may hold some; their tokens are the "
            f"sample's, so the cost is an estimate, not a bound (--sample {count.new} prices every "
            "document, holding every text in memory)"
        )
    return notes


def render(rows: list[PlanRow]) -> str:
    lines = [
        "| backend | part | documents | requests | cached | input tokens | output tokens | cost (USD) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    total = 0.0
    unknown = False
    notes: list[str] = []
    for row in rows:
        e = row.estimate
        if e is None:
            lines.append(f"| {row.backend} | {row.part} | | | | | | free (runs locally) |")
            continue
        cost = "unknown" if e.cost_usd is None else f"{e.cost_usd:,.4f}"
        if row.if_best:
            notes.append(
                "corpus_backends is best: only the best backend on the gold codes the corpus; "
                "add its 'corpus, if best' row to the total"
            )
        else:
            unknown = unknown or e.cost_usd is None
            total += e.cost_usd or 0.0
        lines.append(
            f"| {row.backend} | {row.part} | {e.documents:,} | {e.requests:,} | {e.cached:,} | "
            f"{e.input_tokens:,} | {e.output_tokens:,} | {cost} |"
        )
        if row.corpus is not None:
            notes += corpus_notes(row.backend, row.corpus)
        notes += [f"{row.backend}: {note}" for note in e.notes]
    lines.append("")
    lines.append(f"Estimated cost of new requests: ${total:,.4f}" + (" plus unknown" if unknown else ""))
    lines.append("Tokens are estimated (about four characters per token); cached requests cost nothing.")
    lines += [f"- {note}" for note in dict.fromkeys(notes)]
    # Backends' notes name their endpoint, which may have come from the environment with a login
    # or a key in it: what is printed never holds one.
    return redact_text("\n".join(lines))
