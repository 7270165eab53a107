"""Prompts from the codebook, rendered with the model's own chat template.

The system message holds the task's instructions and its labels with their descriptions (or the
rating scale); few-shot examples from the codebook follow as user/assistant turns; then the document.
The model is never asked to generate: scalecode scores each possible answer (see causal.py), so the
answer format only has to make the right answer likely, not parseable.

- classification: the answer is a label's name;
- multi-label: one yes/no question per label;
- regression: a whole number on the task's scale (or eleven points across it when it is too narrow or
  too wide for whole numbers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scalecode import Example, Task, TaskType

YES, NO = "yes", "no"


# Whole numbers are the rating points of a scale this many units wide, or wider up to WHOLE_AT_MOST: a
# narrower one (0-1, -1.5-1.5) has too few of them to rate on (0-1 would be a yes/no answer).
WHOLE_AT_LEAST, WHOLE_AT_MOST = 4, 20
EVEN_POINTS = 11  # on a scale too narrow or too wide for whole numbers


def rating_points(task: Task) -> list[float]:
    """The answers a regression prompt offers, all on the scale: its whole numbers where it spans 4 to
    20 units, else 11 points evenly across it."""
    assert task.scale is not None
    low, high = task.scale.min, task.scale.max
    if WHOLE_AT_LEAST <= high - low <= WHOLE_AT_MOST:
        return [float(v) for v in range(math.ceil(low), math.floor(high) + 1)]
    step = (high - low) / (EVEN_POINTS - 1)
    # Rounded for the prompt's sake, then clipped: rounding must not step off the scale.
    return [min(high, max(low, round(low + i * step, 2))) for i in range(EVEN_POINTS)]


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def system_message(task: Task, label: str | None = None) -> str:
    """Instructions for the whole task, or (multi-label) for the yes/no question about one label."""
    parts = [task.instructions.strip()] if task.instructions.strip() else []
    if task.type is TaskType.CLASSIFICATION:
        parts.append("Answer with exactly one of these labels, and nothing else:")
        parts += [
            f"- {lab.name}" + (f": {lab.description}" if lab.description else "") for lab in task.labels
        ]
    elif task.type is TaskType.MULTILABEL:
        assert label is not None
        described = next(lab for lab in task.labels if lab.name == label)
        about = f"{described.name}" + (f" ({described.description})" if described.description else "")
        parts.append(f"Does the label '{about}' apply to the text? Answer {YES} or {NO}, and nothing else.")
    else:
        points = rating_points(task)
        parts.append(
            f"Answer with a single number from {number(points[0])} to {number(points[-1])}, and nothing else."
        )
    return "\n".join(parts)


def answer(task: Task, example: Example, label: str | None = None) -> str:
    """What a correct answer to an example looks like."""
    if task.type is TaskType.CLASSIFICATION:
        return str(example.label)
    if task.type is TaskType.MULTILABEL:
        return YES if label in (example.labels or ()) else NO
    points = rating_points(task)
    assert example.score is not None
    return number(min(points, key=lambda p: abs(p - float(example.score))))  # type: ignore[arg-type]


def messages(
    task: Task,
    text: str,
    examples: Sequence[Example],
    label: str | None = None,
    *,
    system_role: bool = True,
) -> list[dict[str, str]]:
    """The conversation for one document (and, multi-label, one label); without ``system_role`` the
    instructions open the first user message (see takes_system_role)."""
    conversation = [{"role": "system", "content": system_message(task, label)}]
    for example in examples:
        conversation.append({"role": "user", "content": example.text})
        conversation.append({"role": "assistant", "content": answer(task, example, label)})
    conversation.append({"role": "user", "content": text})
    return conversation if system_role else without_system_role(conversation)


def without_system_role(conversation: list[dict[str, str]]) -> list[dict[str, str]]:
    """The system message put at the start of the first user message, a blank line before it: what
    later Mistral templates do themselves, and the usual way to instruct a model trained without a
    system role (Gemma, Mistral v0.1)."""
    system, first, *rest = conversation
    assert system["role"] == "system"
    assert first["role"] == "user"
    return [{"role": "user", "content": f"{system['content']}\n\n{first['content']}"}, *rest]


def takes_system_role(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders a system message. Gemma's and Mistral v0.1's call
    raise_exception for one, others leave it out; asked once per tokenizer, so that no document has to
    fail to find out."""
    if not getattr(tokenizer, "chat_template", None):
        return True  # the plain transcript has a line for every role
    from jinja2.exceptions import TemplateError

    probe = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello."}]
    try:
        rendered = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except TemplateError:
        return False
    # Some templates skip what they do not know without a word: the instructions would then never
    # reach the model, and every document would be coded without them.
    return "Be brief." in str(rendered)


def candidates(task: Task) -> list[str]:
    """Every answer the model is scored on."""
    if task.type is TaskType.CLASSIFICATION:
        return task.label_names
    if task.type is TaskType.MULTILABEL:
        return [YES, NO]
    return [number(p) for p in rating_points(task)]


def render(tokenizer: Any, conversation: list[dict[str, str]], reply: str | None = None) -> str:
    """The conversation as the model reads it, ending where the assistant's reply starts (or with it)."""
    if getattr(tokenizer, "chat_template", None):
        if reply is None:
            return str(
                tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
            )
        full = [*conversation, {"role": "assistant", "content": reply}]
        return str(tokenizer.apply_chat_template(full, tokenize=False))
    # A base model without a chat template: a plain transcript, opened by the bos token where the
    # tokenizer puts one before any text (Llama 2's, Mistral's: such models read worse without it).
    # An answer ends as an example's does in it, with the next turn: scored with the eos token
    # instead, each label would carry the odds of an end the examples never showed.
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in conversation]
    prompt = _bos(tokenizer) + "\n\n".join(lines) + "\n\nAssistant:"
    return prompt if reply is None else f"{prompt} {reply}{PLAIN_TURN_END}"


PLAIN_TURN_END = "\n\nUser:"  # what follows an answer in the plain transcript


def _bos(tokenizer: Any) -> str:
    """The bos token's text where the tokenizer opens every text with it, else ""."""
    bos, bos_id = getattr(tokenizer, "bos_token", None), getattr(tokenizer, "bos_token_id", None)
    if not bos or bos_id is None:
        return ""
    try:
        opened = tokenizer("a")["input_ids"]
    except Exception:  # a tokenizer that cannot say: as before, no bos
        return ""
    return str(bos) if len(opened) and opened[0] == bos_id else ""


# Stands in for the last message's content to find where a template puts it: letters only, which no
# template trims, escapes or splits.
STAND_IN = "ScalecodeDocumentStandIn"


def content_span(tokenizer: Any, conversation: list[dict[str, str]], rendered: str) -> tuple[int, int] | None:
    """Where the content of the conversation's last message (the one that holds the document) lies in
    ``rendered``, its rendering: found by rendering the conversation again with a stand-in for that
    content, and taking what is around the stand-in from the two ends of ``rendered``. So a template
    that trims a message (Gemma's, Llama 3's) gives the content as it wrote it. None where the stand-in
    does not come out once, or what is around it is not what is around the content."""
    last = conversation[-1]
    around = render(tokenizer, [*conversation[:-1], {**last, "content": STAND_IN}])
    if around.count(STAND_IN) != 1:
        return None
    before, after = around.split(STAND_IN)
    if len(before) + len(after) > len(rendered) or not (
        rendered.startswith(before) and rendered.endswith(after)
    ):
        return None
    return len(before), len(rendered) - len(after)


def continuation(tokenizer: Any, conversation: list[dict[str, str]], reply: str) -> str:
    """The text the model must produce to give ``reply``: the reply and the end of the turn, which is
    what the template writes after an answer or, where it writes nothing, the eos token.

    Scored without an end, an answer that is the prefix of another ("Pos", "Positive") would be at least
    as likely as the longer one whatever the model thinks: the longer one's likelihood is the shorter's
    times that of the rest. With the end, the shorter one's includes the model's odds that it stops there.
    """
    prompt = render(tokenizer, conversation)
    full = render(tokenizer, conversation, reply)
    text = full[len(prompt) :] if full.startswith(prompt) else reply
    return text if ends_turn(text, reply) else text + (tokenizer.eos_token or "")


def ends_turn(text: str, reply: str) -> bool:
    """Whether ``text``, a reply as the template wrote it, goes on past the reply with more than spaces
    (an end-of-turn token such as ``<|im_end|>``, or the eos token)."""
    return not text.rstrip().endswith(reply.strip())


def answers_end(tokenizer: Any) -> bool:
    """Whether the answers scored with this tokenizer end with an end marker (see continuation)."""
    probe = "Hello."
    return ends_turn(continuation(tokenizer, [{"role": "user", "content": "Hi."}], probe), probe)
