"""Seeded, reproducible train/test splits of the gold documents.

Documents are sorted by id before splitting, so the split depends on the ids, codes, groups and seed,
not on the row order of the file. Classification splits are stratified by label. Where a group
column is named (speech, author, outlet), whole groups go to one side: paragraphs of one speech on
both sides of a split flatter bag-of-words models.
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

from scalecode.backend import GoldSet
from scalecode.errors import ScalecodeError
from scalecode.task import Example, TaskType

# A held-out share further than this from the one asked for is warned of: whole groups go to one side,
# so a grouped split can only come near the share, and a grouped, stratified one by default did not try.
SHARE_TOLERANCE = 0.05
# The most folds a grouped, stratified split that matches its share combines: shares in steps of 1/20.
MAX_FOLDS = 20
# Fold counts whose share m/k is this close to the one asked for are close enough: fewer, larger
# folds come nearer their nominal size than many small ones of a few groups each.
_PLAN_TOLERANCE = 0.01


class SplitShareWarning(UserWarning):
    """A split holds out a share of the gold more than ``SHARE_TOLERANCE`` from the one asked for."""


class SplitLabelWarning(UserWarning):
    """A grouped split put every document of a label on one side: the label is never trained on, or
    never scored."""


class SampleLabelWarning(UserWarning):
    """A learning-curve sample too small to hold every label of the training split."""


def split_gold(
    gold: GoldSet, *, test_size: float, seed: int, stratify: bool = True, match_share: bool = False
) -> tuple[GoldSet, GoldSet]:
    """Return (train, test), with a ``SplitShareWarning`` when the test share misses ``test_size``
    by more than ``SHARE_TOLERANCE``.

    With groups and stratification the test share is by default 1/round(1/test_size) (0.4 gives 0.5):
    one of that many folds, the split earlier versions made. The runner splits again on every run
    and reuses the models and predictions a run directory holds, so that split must not change
    under an existing directory. ``match_share`` combines folds to come as near ``test_size`` as the
    groups allow instead.
    """
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
        train_idx, test_idx = _split(ordered, indices, test_size, seed, stratified, match_share)
    except ValueError as exc:  # scikit-learn's word on too few documents, labels or groups per side
        raise ScalecodeError(
            f"the {len(gold)} gold documents cannot be split {test_size:g} for testing: {exc}; add gold "
            "documents or change the share (evaluation.test_size, or train.validation_size)"
        ) from None
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise ScalecodeError(
            "the split left one side empty; add gold documents or change evaluation.test_size"
        )
    _warn_if_share_missed(
        ordered, len(test_idx), test_size, _shortfall(ordered, test_size, stratified, match_share)
    )
    train, test = ordered.subset(np.sort(train_idx)), ordered.subset(np.sort(test_idx))
    if ordered.groups is not None:
        _warn_of_one_sided_labels(train, test)
    return train, test


def _labels_of(gold: GoldSet) -> list[set[str]]:
    """Each document's labels (classification and multi-label); empty sets for scores."""
    if gold.task.type is TaskType.CLASSIFICATION:
        return [{target} for target in gold.targets]
    if gold.task.type is TaskType.MULTILABEL:
        return [set(target) for target in gold.targets]
    return [set() for _ in gold.targets]


def _warn_of_one_sided_labels(train: GoldSet, test: GoldSet) -> None:
    """Name each label a grouped split put on one side only. Stratification balances labels as far
    as whole groups allow; a label whose documents are in one group or a few cannot be on both sides,
    and figures that never score it, or score a label the coder never saw, should say so."""
    sides = {"training": _labels_of(train), "held-out": _labels_of(test)}
    groups = {"training": train.groups or [], "held-out": test.groups or []}
    for label in train.task.label_names:
        present = {
            side: [i for i, labels in enumerate(docs) if label in labels] for side, docs in sides.items()
        }
        if bool(present["training"]) == bool(present["held-out"]):
            continue  # on both sides, or in no gold document at all
        side = "training" if present["training"] else "held-out"
        n_groups = len({groups[side][i] for i in present[side]})
        consequence = (
            "it is trained on but never scored" if side == "training" else "it is scored but never trained on"
        )
        in_groups = f"{n_groups} group{'' if n_groups == 1 else 's'}"
        warnings.warn(
            SplitLabelWarning(
                f"label {label!r}: all {len(present[side])} of its gold documents are in {in_groups} "
                f"(data.gold.group_column), which the grouped split put on the {side} side only: "
                f"{consequence}; code more documents of it in other groups"
            ),
            stacklevel=3,
        )


def _shortfall(ordered: GoldSet, test_size: float, stratified: bool, match_share: bool) -> str:
    """Why a split may hold out another share than the one asked for."""
    if ordered.groups is None:
        return "too few documents to come nearer"
    if stratified and not match_share:
        return f"a split by group and label holds out one of {max(2, round(1 / test_size))} folds"
    return f"whole groups go to one side, and there are {len(set(ordered.groups))}"


def _warn_if_share_missed(ordered: GoldSet, n_test: int, test_size: float, why: str) -> None:
    """Say so when the held-out share is not the one asked for: figures quoted as from a 0.4 split
    that came from a 0.5 one would mislead, and the run's own lines give only the counts."""
    share = n_test / len(ordered)
    if abs(share - test_size) <= SHARE_TOLERANCE:
        return
    warnings.warn(
        SplitShareWarning(
            f"the split holds out {n_test} of the {len(ordered)} gold documents ({share:.1%}), not the "
            f"{test_size:.1%} asked for (evaluation.test_size, or train.validation_size): {why}"
        ),
        stacklevel=3,
    )


def _split(
    ordered: GoldSet,
    indices: np.ndarray,
    test_size: float,
    seed: int,
    stratified: bool,
    match_share: bool,
) -> tuple[np.ndarray, np.ndarray]:
    if ordered.groups is not None:
        groups = np.asarray(ordered.groups)
        if stratified and match_share:
            return _grouped_stratified(indices, np.asarray(ordered.targets), groups, test_size, seed)
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


def _fold_plan(test_size: float, n_groups: int) -> tuple[int, int]:
    """(folds, test folds): the fewest folds k (at most ``MAX_FOLDS``, and no more than there are
    groups) whose m/k is within ``_PLAN_TOLERANCE`` of ``test_size``; else the nearest m/k."""
    plans = [(k, m) for k in range(2, min(n_groups, MAX_FOLDS) + 1) for m in range(1, k)]
    close = [(k, m) for k, m in plans if abs(m / k - test_size) <= _PLAN_TOLERANCE]
    if close:
        return close[0]  # plans run by k: the first close one has the fewest folds
    return min(plans, key=lambda plan: (abs(plan[1] / plan[0] - test_size), plan[0]))


def _grouped_stratified(
    indices: np.ndarray, labels: np.ndarray, groups: np.ndarray, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified folds of whole groups, m of k held out: the m whose documents come nearest
    ``test_size`` of the whole, as folds of whole groups differ in size."""
    k, m = _fold_plan(test_size, len(set(groups)))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # scikit-learn's note that a rare label cannot be in every fold ("The least populated class
        # ... n_splits") is about folds the user never asked for: the test side joins m of them.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds = [test for _, test in splitter.split(indices, labels, groups)]
    target = test_size * len(indices)
    sizes = [len(fold) for fold in folds]
    # At most C(19, 9) sets of folds (_fold_plan keeps k small unless no near share has fewer);
    # ties go to the first, so the split stays a function of the seed.
    chosen = min(itertools.combinations(range(k), m), key=lambda c: abs(sum(sizes[i] for i in c) - target))
    test_idx = np.concatenate([folds[i] for i in chosen])
    train_idx = np.setdiff1d(indices, test_idx)
    return train_idx, test_idx


def subsample_gold(gold: GoldSet, n: int, *, seed: int, stratify: bool = True) -> GoldSet:
    """``n`` of the gold documents, drawn with a seed (stratified for classification where possible).

    Stratified, every label of ``gold`` has at least one document in the sample where ``n`` allows
    (at least as many documents as labels), the rest in proportion: a proportional draw alone leaves
    a rare label out of every small sample. A ``SampleLabelWarning`` says when ``n`` is too small.
    """
    if n >= len(gold):
        return gold
    ordered = gold.subset(sorted(range(len(gold)), key=lambda i: gold.ids[i]))
    indices = np.arange(len(ordered))
    labels = ordered.targets if stratify and ordered.task.type is TaskType.CLASSIFICATION else None
    stratified = labels
    if labels is not None:
        counts = Counter(labels)
        # Every label needs two documents, and the sample one per label, for a stratified draw.
        if min(counts.values()) < 2 or n < len(counts):
            stratified = None
    try:
        chosen, _ = train_test_split(indices, train_size=n, random_state=seed, stratify=stratified)
    except ValueError:  # too few left over for every label: a plain draw, still seeded
        chosen, _ = train_test_split(indices, train_size=n, random_state=seed)
    if labels is not None:
        chosen = _every_label(np.asarray(labels), np.asarray(chosen), n, seed)
    return ordered.subset(np.sort(chosen))


def _every_label(labels: np.ndarray, chosen: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``chosen`` with one document of each label it lacks, in place of documents of the label it
    holds most of; the draw as it was where it holds every label (the samples earlier versions drew)."""
    present = sorted(set(labels.tolist()))
    if n < len(present):
        warnings.warn(
            SampleLabelWarning(
                f"a learning-curve sample of {n} training documents cannot hold all {len(present)} labels "
                "of the training split: some label is missing from it (evaluation.learning_curve.sizes)"
            ),
            stacklevel=3,
        )
        return chosen
    missing = [label for label in present if label not in set(labels[chosen].tolist())]
    if not missing:
        return chosen
    rng = np.random.default_rng(seed)
    kept = list(chosen)
    for label in missing:
        # Out: a document of the label the sample holds most of (it holds at least two: n documents
        # over fewer labels than n). In: a document of the missing label.
        held = Counter(labels[kept].tolist())
        most = max(sorted(held), key=lambda name: held[name])
        out = [position for position, i in enumerate(kept) if labels[i] == most]
        kept.pop(out[int(rng.integers(len(out)))])
        pool = np.flatnonzero(labels == label)
        kept.append(int(pool[int(rng.integers(len(pool)))]))
    return np.asarray(kept)


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


def _normalised(text: str) -> str:
    """A text as compared for leakage: case and runs of whitespace do not make two texts differ."""
    return " ".join(text.split()).casefold()


def leakage(train: GoldSet, test: GoldSet, examples: Sequence[Example]) -> list[str]:
    """What of the test split a coder may have seen: codebook examples that are test documents (by
    id or text), and test texts that are also training texts (a repeated paragraph, a press release
    quoted twice). Either makes test figures look better than the coder is on new documents.

    Warnings, not errors: a repeated boilerplate sentence can be on both sides with good reason, and
    the user decides; the run says how many and which.
    """
    found = []
    test_ids = set(test.ids)
    test_texts = {_normalised(t): i for i, t in zip(test.ids, test.texts, strict=True)}
    shown = [
        e.id if e.id in test_ids else test_texts[_normalised(e.text)]
        for e in examples
        if e.id in test_ids or _normalised(e.text) in test_texts
    ]
    if shown:
        found.append(
            f"{len(shown)} codebook example(s) are test documents ({_some(shown)}): a prompt-based "
            "coder is shown their codes, and its test figures count them"
        )
    train_texts = {_normalised(t) for t in train.texts}
    both = [i for i, t in zip(test.ids, test.texts, strict=True) if _normalised(t) in train_texts]
    if both:
        # Where groups are set, the split already keeps each group on one side: the repeats are in
        # different groups, and telling the user to set group_column would send them in a circle.
        advice = (
            "they are in different groups (data.gold.group_column), which the split may put on "
            "different sides; give the repeats one group, or remove them"
            if test.groups is not None
            else "set data.gold.group_column to keep such documents on one side, or remove the repeats"
        )
        found.append(
            f"{len(both)} test document(s) have the text of a training document ({_some(both)}): "
            f"a trained coder may have learned their codes; {advice}"
        )
    return found


def _some(ids: Sequence[str], shown: int = 5) -> str:
    more = f", and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more
