"""Reading a model's reply: codes checked against the codebook, and a confidence from log-probabilities.

Parsing is tolerant of form and strict about content. A reply may be JSON, JSON inside prose or a
code fence, or (one document, classification) a label alone: the whole reply, optionally quoted or
followed by a period, never a label found inside a sentence. Whatever the form,
a code outside the codebook, a score outside the scale or a reply that names no single label is an
error that keeps the raw reply: never a crash and never a guess.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from scalecode import Task, TaskType
from scalecode_openai.prompts import code_field

JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class Code:
    """One document's answer: the code, or the reason there is none."""

    value: Any = None  # str, list[str] or float
    error: str | None = None
    position: int = 0  # which answer of the reply it is (several documents may come back in any order)


def _load_json(content: str) -> Any:
    # RecursionError: a reply nested deeper than the parser goes ("[[[[..."), no answer either.
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        pass
    found = JSON_OBJECT.search(content)  # JSON inside prose or a code fence
    if found:
        try:
            return json.loads(found.group(0))
        except (ValueError, RecursionError):
            return None
    return None


_QUOTES = (('"', '"'), ("'", "'"), ("`", "`"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("**", "**"))


_FENCE = re.compile(r"\A```[\w-]*\s*\n?(.*?)\n?\s*```\Z", re.DOTALL)


def _labels_alone(content: str) -> list[str]:
    """What a reply that is a bare label may be, most literal first: the reply stripped; out of a
    code fence; out of one pair of quotes (or backticks, or Markdown bold); without a trailing
    period, inside or outside the quotes. Tried in this order, a label that ends in a period
    ("U.S.") is read as written before its period is taken for punctuation."""
    text = content.strip()
    if fenced := _FENCE.match(text):
        text = fenced.group(1).strip()
    found = [text]
    for opening, closing in _QUOTES:
        inner = text.removesuffix(".").strip()
        for candidate in (text, inner):
            if (
                len(candidate) > len(opening) + len(closing)
                and candidate.startswith(opening)
                and candidate.endswith(closing)
            ):
                quoted = candidate[len(opening) : -len(closing)].strip()
                found += [quoted, quoted.removesuffix(".").strip()]
                break
    found.append(text.removesuffix(".").strip())
    return list(dict.fromkeys(found))


def _label(task: Task, value: Any) -> str | None:
    """The codebook's label that ``value`` names, or None. A server that ignores the enum may change
    the case or add spaces, or write a label that is a number ("2") as a number (2)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    if value in task.label_names:
        return value
    matches = [name for name in task.label_names if name.casefold() == value.strip().casefold()]
    return matches[0] if len(matches) == 1 else None


def check(task: Task, value: Any) -> Code:
    """A code from a parsed answer, or an error saying why it is not one."""
    if task.type is TaskType.CLASSIFICATION:
        if (label := _label(task, value)) is not None:
            return Code(label)
        return Code(error=f"answer is not a label of the codebook: {value!r}")
    if task.type is TaskType.MULTILABEL:
        if isinstance(value, list):
            labels = [_label(task, v) for v in value]
            unknown = [v for v, label in zip(value, labels, strict=True) if label is None]
            if not unknown:
                known = {label for label in labels if label is not None}
                return Code(sorted(known, key=task.label_names.index))
            return Code(error=f"answer has labels not in the codebook: {unknown!r}")
        return Code(error=f"answer is not a list of labels: {value!r}")
    assert task.scale is not None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return Code(error=f"answer is not a number: {value!r}")
    try:
        score = float(value)
    except ValueError:
        return Code(error=f"answer is not a number: {value!r}")
    except OverflowError:  # an integer of hundreds of digits: a number, far outside any scale
        return Code(
            error=f"score {str(value)[:20]}... is outside the scale {task.scale.min:g} to {task.scale.max:g}"
        )
    if not math.isfinite(score) or not task.scale.min <= score <= task.scale.max:
        return Code(error=f"score {score:g} is outside the scale {task.scale.min:g} to {task.scale.max:g}")
    return Code(score)


def parse(task: Task, content: str | None, documents: int) -> list[Code]:
    """The codes of ``documents`` documents from one reply, in the order they were sent."""
    if not content or not content.strip():
        return [Code(error="empty answer")] * documents
    field = code_field(task)
    data = _load_json(content)
    if documents == 1:
        if isinstance(data, dict) and field in data:
            return [check(task, data[field])]
        if task.type is TaskType.CLASSIFICATION and not isinstance(data, dict):
            # Prose: only a reply that is a label and nothing else. A label found inside a sentence
            # ("This is not offensive.", "I can't help with that. No.") or a cut-off answer
            # ('{"label": "pro-gov') is not an answer, whatever word it contains.
            for candidate in _labels_alone(content):
                alone = check(task, candidate)
                if alone.error is None:
                    return [alone]
        return [Code(error=f"answer has no '{field}'")]
    if not isinstance(data, dict) or not isinstance(data.get("answers"), list):
        return [Code(error="answer has no list of 'answers'")] * documents
    by_id: dict[str, list[tuple[int, Any]]] = {}
    # An answer's position counts the answers with a code field only: the n-th such field in the
    # reply is the n-th answer's, whose tokens give its confidence (see ``confidences``).
    # (Codes the pattern there finds: a string, a list or a number; not null, true or an object.)
    coded = [item for item in data["answers"] if isinstance(item, dict) and _spelt(item.get(field, None))]
    positions = {id(item): position for position, item in enumerate(coded)}
    for item in data["answers"]:
        if isinstance(item, dict) and "id" in item and field in item:
            # An answer whose code the pattern does not find has no confidence (position past them).
            position = positions.get(id(item), len(coded))
            by_id.setdefault(str(item["id"]).strip(), []).append((position, item[field]))
    codes = []
    for i in range(1, documents + 1):
        entries = by_id.get(str(i), [])
        if not entries:
            codes.append(Code(error=f"answer has no entry for document {i}"))
            continue
        position, value = entries[0]
        code = check(task, value)
        if any(check(task, other).value != code.value or code.error for _, other in entries[1:]):
            # Two answers for one document that differ (or either is no code): taking one is a guess.
            shown = ", ".join(repr(other) for _, other in entries)
            codes.append(Code(error=f"answer has {len(entries)} entries for document {i}: {shown}"))
            continue
        codes.append(Code(code.value, code.error, position))
    return codes


def _spelt(value: Any) -> bool:
    """Whether ``value`` is a code as ``confidences`` finds codes in a reply: a string, a list or a
    number (not a boolean, null or an object)."""
    if isinstance(value, float):
        return math.isfinite(value)  # NaN and Infinity, which JSON parsers take, are no number it finds
    return isinstance(value, (str, list)) or (isinstance(value, int) and not isinstance(value, bool))


def _finite_or_not_a_number(spelt: str) -> bool:
    """Whether a code found in a reply's text counts as one: a string or a list, or a number that
    reads as a finite one ("-" of "-Infinity", or 1e400, which JSON reads as infinite, do not)."""
    if spelt[:1] in ('"', "["):
        return True
    try:
        return math.isfinite(float(spelt))
    except ValueError:
        return False


def confidences(task: Task, content: str, tokens: list[dict[str, Any]] | None) -> list[float]:
    """Probability the model gave each code in its reply, in reply order, from token log-probabilities.

    The n-th ``"label": ...`` value in the reply is the n-th answer's code; its probability is exp of
    the summed log-probabilities of the tokens overlapping it. Empty where the server gave no
    log-probabilities or its tokens do not spell the reply.
    """
    if not tokens:
        return []
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(str(token.get("token", "")))
    if position != len(content):
        return []  # the tokens do not spell the reply: offsets would be wrong
    field = code_field(task)
    spans = [
        match.span(1)
        for match in re.finditer(rf'"{field}"\s*:\s*("(?:[^"\\]|\\.)*"|\[[^\]]*\]|-?[\d.eE+-]+)', content)
        if _finite_or_not_a_number(match.group(1))  # as ``_spelt`` counts the answers' codes
    ]
    out: list[float] = []
    for begin, end in spans:
        logprobs = [
            token.get("logprob", 0.0)
            for token, start in zip(tokens, starts, strict=True)
            if start < end and start + len(str(token.get("token", ""))) > begin
        ]
        if not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in logprobs):
            return []  # a token without its log-probability (null): no confidence, not a guess
        out.append(math.exp(min(sum(logprobs), 0.0)))  # a log-probability is never above 0
    return out
