"""Deterministic subsets of a training split: a validation hold-out and class-balanced budgets.

Both are pure functions of the labels and a seed (NumPy's PCG64), so a rerun, a resumed run, or
another machine picks exactly the same examples.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from aejax.data.datasets import Dataset, Split
from aejax.errors import UserError

VAL_STREAM = 1  # keeps the validation draw independent of the label-budget draw


def hold_out(data: Dataset, count: int, seed: int) -> tuple[Dataset, Split]:
    """`data` without `count` training examples drawn by `seed`, and those examples."""
    total = len(data.train_labels)
    if not 0 < count < total:
        raise UserError(
            f"a validation split of {count} must be between 1 and {total - 1} (the training set "
            f"has {total})",
            settings=("val_split",),
        )
    order = np.random.default_rng([seed, VAL_STREAM]).permutation(total)
    val, train = np.sort(order[:count]), np.sort(order[count:])
    rest = dataclasses.replace(
        data, train_images=data.train_images[train], train_labels=data.train_labels[train]
    )
    return rest, Split(data.train_images[val], data.train_labels[val])


def per_class_counts(budget: int, num_classes: int) -> np.ndarray:
    """`budget` split over classes as evenly as possible (the first classes take any remainder)."""
    counts = np.full(num_classes, budget // num_classes)
    counts[: budget % num_classes] += 1
    return counts


def balanced_indices(labels: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced subset of `budget` examples, chosen by `seed`.

    Each class is shuffled once per seed and the subset takes its first examples, so the subsets
    of one seed are nested: the 100-label set lies inside the 1000-label set.
    """
    classes = np.unique(labels)
    counts = per_class_counts(budget, len(classes))
    rng = np.random.default_rng(seed)
    chosen = []
    for cls, count in zip(classes, counts, strict=True):
        members = np.flatnonzero(labels == cls)
        if count > len(members):
            raise UserError(
                f"a budget of {budget} labels needs {count} examples of class {cls}, "
                f"but the training set has {len(members)}",
                settings=("budgets",),
            )
        chosen.append(rng.permutation(members)[:count])
    return np.sort(np.concatenate(chosen)).astype(np.int32)
