"""The optimizer of fine-tuning: AdamW over parameter groups that may learn at different rates.

Two common refinements for fine-tuning a pretrained encoder on a small gold set, both off by
default:

- ``head_learning_rate``: the freshly initialised head starts from nothing, the pretrained body from
  something good, so the head may learn faster than the body;
- ``layer_decay`` (layer-wise learning-rate decay): each transformer layer learns at ``layer_decay``
  times the rate of the layer above it, and the embeddings at that factor below the lowest layer,
  so the general features near the input move least.

Parameters are recognised by their names, so the rules hold for any architecture whose layers are
numbered (``encoder.layer.3.``, ``transformer.layer.3.``, ``layers.3.``, ``h.3.``, ``block.3.``)
and whose head is a module called ``head``, ``classifier`` or ``score``, unless the model names its
head's parameters itself (``head_parameters()``, as scalecode's encoders do).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from itertools import pairwise

import torch

HEAD_MODULES = frozenset({"head", "classifier", "score"})
LAYER_LISTS = frozenset({"layer", "layers", "h", "block", "blocks"})


def is_head(name: str) -> bool:
    """Whether a parameter belongs to the task's head (a module named head, classifier or score)."""
    return any(part in HEAD_MODULES for part in name.split("."))


def layer_index(name: str) -> int | None:
    """The number of the transformer layer a parameter sits in, or None outside the layers."""
    parts = name.split(".")
    for before, part in pairwise(parts):
        if before in LAYER_LISTS and part.isdigit():
            return int(part)
    return None


def is_embedding(name: str) -> bool:
    return any("embed" in part for part in name.split("."))


def learning_rate_scales(
    names: list[str],
    learning_rate: float,
    head_learning_rate: float | None,
    layer_decay: float | None,
    head: Collection[str] | None = None,
) -> dict[str, float]:
    """Each parameter's learning rate.

    With ``layer_decay`` d and L layers, layer i (from 0 at the bottom) learns at d**(L - i) times
    the rate, the embeddings at d**(L + 1); the head and everything else (final norms, poolers) at
    the full rate. ``head``: the names of the head's parameters, where the model says which they
    are; by default those of a module named head, classifier or score.
    """
    layers = [index for index in map(layer_index, names) if index is not None]
    depth = max(layers) + 1 if layers else 0
    rates: dict[str, float] = {}
    for name in names:
        rate = learning_rate
        if name in head if head is not None else is_head(name):
            rate = head_learning_rate or learning_rate
        elif layer_decay is not None:
            index = layer_index(name)
            if index is not None:
                rate = learning_rate * layer_decay ** (depth - index)
            elif is_embedding(name):
                rate = learning_rate * layer_decay ** (depth + 1)
        rates[name] = rate
    return rates


def build_optimizer(
    model: torch.nn.Module,
    learning_rate: float,
    weight_decay: float,
    head_learning_rate: float | None = None,
    layer_decay: float | None = None,
) -> torch.optim.Optimizer:
    """AdamW (fused) without weight decay on biases and normalisation weights, one group per rate.

    A model with a ``head_parameters()`` method names its head's weights itself: DistilBERT's
    classifier comes with a new ``pre_classifier`` layer, which no name says is part of the head.
    """
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    says = getattr(model, "head_parameters", None)
    head = None
    if callable(says):
        ids = {id(p) for p in says()}
        head = {name for name, p in trainable if id(p) in ids}
    rates = learning_rate_scales(
        [name for name, _ in trainable], learning_rate, head_learning_rate, layer_decay, head
    )
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = defaultdict(list)
    for name, parameter in trainable:
        decays = parameter.ndim >= 2 and "norm" not in name.lower()
        groups[(rates[name], weight_decay if decays else 0.0)].append(parameter)
    return torch.optim.AdamW(
        [{"params": params, "lr": lr, "weight_decay": wd} for (lr, wd), params in groups.items()],
        lr=learning_rate,
        fused=True,
    )
