"""What the causal-LM tests share: real models' chat templates, and label likelihoods as coded.

In the package (as ``scalecode.testing`` is) because test modules do not import each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scalecode_hf.causal import CausalLMBackend

# Movie reviews for the review codebook (scalecode.testing.review_task): two of each sentiment.
REVIEWS = [
    "A wonderful, moving film.",
    "Terrible acting and a boring plot.",
    "I loved every minute.",
    "The worst movie of the year.",
]

# The template of google/gemma-2b-it (tokenizer_config.json): it raises an error for a message whose
# role is "system", and trims each message.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
# ChatML without an end to the assistant's turn, as some base models' templates are: the next message
# follows the answer directly.
ENDLESS_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' + message['content'] }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def label_likelihoods(
    backend: CausalLMBackend, texts: Sequence[str], precision: str | None = None
) -> np.ndarray:
    """Each text's log-likelihood of each label, as the backend codes it: its model as loaded for
    coding, its device, and its precision (or ``precision``)."""
    from scalecode_hf.likelihood import score_answers

    if backend.scorer is None:
        backend.load()
    scorer = backend.scorer
    assert scorer is not None
    prompts, answers = [], []
    for text in texts:
        [(conversation, replies)] = scorer.conversations(text)
        tokens, options = scorer.encode(conversation, replies)
        prompts.append(tokens)
        answers.append(options)
    scores = score_answers(
        backend.model,
        prompts,
        answers,
        pad_id=scorer.pad_id,
        batch_size=4,
        device=backend.device,
        precision=precision or backend.precision,
    )
    return np.array(scores)
