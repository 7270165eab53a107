"""How likely a causal LM finds each possible answer after a prompt.

Every (prompt, answer) pair becomes one token sequence. Sequences are batched by length and padded on
the left, so that all answers end at the last position; position ids follow the padding, so a padded
sequence is scored as if it were alone; and only the logits for the last answer-length positions are
computed (``logits_to_keep``), so memory grows with the answers, not with the prompt times the vocabulary.
The score of an answer is the sum of its tokens' log-probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from scalecode_hf.batching import autocast, pad


def answer_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
    """Logits for the last ``keep`` positions of left-padded sequences."""
    positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
    try:
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep)
        logits: torch.Tensor = out.logits
    except TypeError:  # an architecture without logits_to_keep
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    # Cut again: a model that takes **kwargs (remote code, some wrappers) may ignore logits_to_keep
    # and give every position, and position arithmetic on them would read the wrong tokens.
    return logits[:, -keep:]


def answer_log_probs(logits: torch.Tensor, ids: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """Sum of the answer tokens' log-probabilities; ``logits`` hold the last max(lengths) + 1 positions."""
    keep = logits.shape[1]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    totals = []
    for row, length in enumerate(lengths):
        # Token at position p is predicted at p - 1; the answer is the last `length` tokens.
        predicting = log_probs[row, keep - 1 - length : keep - 1]
        tokens = ids[row, ids.shape[1] - length :]
        totals.append(predicting.gather(-1, tokens.unsqueeze(-1)).sum())
    return torch.stack(totals)


def score_answers(
    model: Any,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[Sequence[int]]],
    *,
    pad_id: int,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
) -> list[np.ndarray]:
    """For each prompt, the log-likelihood of each of its answers (one array per prompt)."""
    pairs = [(i, k) for i, options in enumerate(answers) for k in range(len(options))]
    sequences = [list(prompts[i]) + list(answers[i][k]) for i, k in pairs]
    order = np.argsort([len(s) for s in sequences], kind="stable")
    scores = np.zeros(len(pairs), dtype=np.float64)
    with torch.inference_mode(), autocast(device, precision):
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = pad([sequences[j] for j in chunk], pad_id, side="left")
            lengths = [len(answers[pairs[j][0]][pairs[j][1]]) for j in chunk]
            ids, mask = ids.to(device), mask.to(device)
            logits = answer_logits(model, ids, mask, max(lengths) + 1)
            scores[chunk] = answer_log_probs(logits, ids, lengths).cpu().numpy()
    out = [np.zeros(len(options)) for options in answers]
    for (i, k), value in zip(pairs, scores, strict=True):
        out[i][k] = value
    return out


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return np.asarray(shifted / shifted.sum())
