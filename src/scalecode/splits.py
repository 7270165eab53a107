"""Seeded, reproducible train/test splits of the gold documents.

Documents are sorted by id before splitting, so the split depends on the ids, codes, groups and seed,
not on the row order of the file. Classification splits are stratified by label. Where a group
column is named (speech, author, outlet), whole groups go to one side: paragraphs of one speech on
both sides of a split flatter bag-of-words models.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

from scalecode.backend import GoldSet
from scalecode.errors import ScalecodeError
from scalecode.task import Example, TaskType


def split_gold(
    gold: GoldSet, *, test_size: float, seed: int, stratify: bool = True
) -> tuple[GoldSet, GoldSet]:
    """Return (train, test). With groups and stratification, the test share is 1/round(1/test_size)."""
    if len(gold) < 2:
        raise ScalecodeError(f"a split needs at least 2 gold documents, got {len(gold)}")
    ordered = gold.subset(sorted(range(len(gold)), key=lambda i: gold.ids[i]))
    indices = np.arange(len(ordered))
    stratified = stratify and ordered.task.type is TaskType.CLASSIFICATION
    if stratified:
        counts = Counter(ordered.targets)
        rare = sorted(label for label, count in counts.items() if count < 2)
        if rare:
            raise ScalecodeError(
                f"label(s) {', '.join(map(repr, rare))} have fewer than 2 gold documents, too few to appear "
                "on both sides of a stratified split; add gold documents or set evaluation.stratify: false"
            )
    if ordered.groups is not None and len(set(ordered.groups)) < 2:
        raise ScalecodeError("a grouped split needs at least 2 groups")
    try:
        train_idx, test_idx = _split(ordered, indices, test_size, seed, stratified)
    except ValueError as exc:  # scikit-learn's word on too few documents, labels or groups per side
        raise ScalecodeError(
            f"the {len(gold)} gold documents cannot be split {test_size:g} for testing: {exc}; add gold "
            "documents or change the share (evaluation.test_size, or train.validation_size)"
        ) from None
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise ScalecodeError(
            "the split left one side empty; add gold documents or change evaluation.test_size"
        )
    return ordered.subset(np.sort(train_idx)), ordered.subset(np.sort(test_idx))


def _split(
    ordered: GoldSet, indices: np.ndarray, test_size: float, seed: int, stratified: bool
) -> tuple[np.ndarray, np.ndarray]:
    if ordered.groups is not None:
        groups = np.asarray(ordered.groups)
        if stratified:
            folds = max(2, round(1 / test_size))
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            train_idx, test_idx = next(splitter.split(indices, ordered.targets, groups))
        else:
            shuffle = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
            train_idx, test_idx = next(shuffle.split(indices, groups=groups))
        return train_idx, test_idx
    train_idx, test_idx = train_test_split(
        indices,
        test_size=test_size,
        random_state=seed,
        stratify=ordered.targets if stratified else None,
    )
    return train_idx, test_idx


def subsample_gold(gold: GoldSet, n: int, *, seed: int, stratify: bool = True) -> GoldSet:
    """``n`` of the gold documents, drawn with a seed (stratified for classification where possible)."""
    if n >= len(gold):
        return gold
    ordered = gold.subset(sorted(range(len(gold)), key=lambda i: gold.ids[i]))
    indices = np.arange(len(ordered))
    labels = ordered.targets if stratify and ordered.task.type is TaskType.CLASSIFICATION else None
    if labels is not None:
        counts = Counter(labels)
        # Every label needs two documents, and the sample one per label, for a stratified draw.
        if min(counts.values()) < 2 or n < len(counts):
            labels = None
    try:
        chosen, _ = train_test_split(indices, train_size=n, random_state=seed, stratify=labels)
    except ValueError:  # too few left over for every label: a plain draw, still seeded
        chosen, _ = train_test_split(indices, train_size=n, random_state=seed)
    return ordered.subset(np.sort(chosen))


def draw_examples(train: GoldSet, per_label: int, *, seed: int) -> list[Example]:
    """Few-shot examples from the training split: ``per_label`` per label, or in all for scores."""
    task = train.task
    rng = np.random.default_rng(seed)
    order = sorted(range(len(train)), key=lambda i: train.ids[i])
    chosen: list[int] = []
    if task.type is TaskType.CLASSIFICATION:
        for label in task.label_names:
            pool = [i for i in order if train.targets[i] == label]
            chosen += [
                pool[j] for j in sorted(rng.choice(len(pool), min(per_label, len(pool)), replace=False))
            ]
    elif task.type is TaskType.MULTILABEL:
        for label in task.label_names:
            pool = [i for i in order if label in train.targets[i] and i not in chosen]
            chosen += [
                pool[j] for j in sorted(rng.choice(len(pool), min(per_label, len(pool)), replace=False))
            ]
    else:
        chosen = [order[j] for j in sorted(rng.choice(len(order), min(per_label, len(order)), replace=False))]
    examples = []
    for i in chosen:
        code = train.targets[i]
        if task.type is TaskType.CLASSIFICATION:
            examples.append(Example(id=train.ids[i], text=train.texts[i], label=code))
        elif task.type is TaskType.MULTILABEL:
            examples.append(Example(id=train.ids[i], text=train.texts[i], labels=tuple(code)))
        else:
            examples.append(Example(id=train.ids[i], text=train.texts[i], score=float(code)))
    return examples
