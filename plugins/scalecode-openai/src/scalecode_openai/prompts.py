"""Chat messages and the answer's JSON schema, built from the codebook.

The system message holds the instructions and the labels with their descriptions (or the rating
scale) and says what to answer; few-shot examples from the codebook follow as user/assistant turns;
then the documents. One document is sent as it is. Several are sent as numbered
``<document id="1">...</document>`` blocks and answered as a list of ``{"id", <code>}``, so that each
answer maps back to its document by id, not by position in the reply.

The schema (``response_format`` of type ``json_schema``) makes the label field an enum of the
codebook's labels, and the score a number within the task's scale, so a server that enforces
schemas can only answer valid codes. Servers without schema support get the same request with the
format described in the prompt alone; their answers are checked just as strictly (answers.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from scalecode import Example, Task, TaskType


def code_field(task: Task) -> str:
    """The key of the code in an answer: label, labels or score."""
    return {TaskType.CLASSIFICATION: "label", TaskType.MULTILABEL: "labels", TaskType.REGRESSION: "score"}[
        task.type
    ]


def _code_schema(task: Task) -> dict[str, Any]:
    if task.type is TaskType.CLASSIFICATION:
        return {"type": "string", "enum": task.label_names}
    if task.type is TaskType.MULTILABEL:
        return {"type": "array", "items": {"type": "string", "enum": task.label_names}}
    assert task.scale is not None
    return {"type": "number", "minimum": task.scale.min, "maximum": task.scale.max}


def answer_schema(task: Task, documents: int) -> dict[str, Any]:
    """The JSON schema of a reply coding ``documents`` documents."""
    field = code_field(task)
    one = {
        "type": "object",
        "properties": {field: _code_schema(task)},
        "required": [field],
        "additionalProperties": False,
    }
    if documents == 1:
        return one
    item = {
        "type": "object",
        "properties": {"id": {"type": "string"}, field: _code_schema(task)},
        "required": ["id", field],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"answers": {"type": "array", "items": item}},
        "required": ["answers"],
        "additionalProperties": False,
    }


def response_format(task: Task, documents: int, kind: str) -> dict[str, Any] | None:
    """The request's ``response_format`` for a structured-output kind (None: say it in the prompt only)."""
    if kind == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "coding", "strict": True, "schema": answer_schema(task, documents)},
        }
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def system_message(task: Task, documents: int) -> str:
    parts = [task.instructions.strip()] if task.instructions.strip() else []
    field = code_field(task)
    if task.type is TaskType.REGRESSION:
        assert task.scale is not None
        parts.append(f"Give a number from {task.scale.min:g} to {task.scale.max:g} as the score.")
    else:
        which = "exactly one" if task.type is TaskType.CLASSIFICATION else "every one that applies"
        parts.append(f"Choose {which} of these labels, written exactly as here:")
        parts += [
            f"- {lab.name}" + (f": {lab.description}" if lab.description else "") for lab in task.labels
        ]
    example = {"label": "...", "labels": ["..."], "score": 0}[field]
    one = json.dumps({field: example})
    if documents == 1:
        parts.append(f"Answer with JSON only, in this form: {one}")
    else:
        many = json.dumps({"answers": [{"id": "1", field: example}]})
        parts.append(
            "Several documents follow, each in a <document id=...> block. Answer every one, with JSON "
            f"only, in this form: {many}"
        )
    return "\n".join(parts)


def example_answer(task: Task, example: Example) -> dict[str, Any]:
    if task.type is TaskType.CLASSIFICATION:
        return {"label": example.label}
    if task.type is TaskType.MULTILABEL:
        return {"labels": list(example.labels or ())}
    return {"score": example.score}


def block(number: int, text: str) -> str:
    return f'<document id="{number}">\n{text}\n</document>'


def user_message(texts: Sequence[str]) -> str:
    if len(texts) == 1:
        return texts[0]
    return "\n".join(block(i, text) for i, text in enumerate(texts, 1))


def messages(task: Task, texts: Sequence[str], examples: Sequence[Example]) -> list[dict[str, str]]:
    """The conversation coding ``texts`` in one request."""
    conversation = [{"role": "system", "content": system_message(task, len(texts))}]
    for example in examples:  # each example is asked and answered as the documents will be
        if len(texts) == 1:
            asked, reply = example.text, example_answer(task, example)
        else:
            asked, reply = block(1, example.text), {"answers": [{"id": "1", **example_answer(task, example)}]}
        conversation.append({"role": "user", "content": asked})
        conversation.append({"role": "assistant", "content": json.dumps(reply)})
    conversation.append({"role": "user", "content": user_message(texts)})
    return conversation
