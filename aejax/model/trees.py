"""Comparing the structure of parameter trees: which paths are missing, extra, or shaped wrongly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np


class Difference(NamedTuple):
    """One place where two trees differ: ``kind`` is "missing", "unexpected" or "shape"."""

    path: str
    kind: str
    expected: tuple[int, ...] | None
    actual: tuple[int, ...] | None


def leaf_shapes(tree: Any, prefix: str = "") -> dict[str, tuple[int, ...] | None]:
    """``{"hidden/kernel": (784, 128), ...}`` for nested mappings; None for None leaves."""
    if isinstance(tree, Mapping):
        shapes: dict[str, tuple[int, ...] | None] = {}
        for key, value in tree.items():
            shapes.update(leaf_shapes(value, f"{prefix}{key}/"))
        return shapes
    if tree is None:
        return {prefix.rstrip("/"): None}
    return {prefix.rstrip("/"): tuple(getattr(tree, "shape", None) or np.shape(tree))}


def differences(expected: Any, actual: Any, shapes: bool = True) -> list[Difference]:
    """Paths of `expected` that `actual` lacks, paths it adds, and (with `shapes`) shape changes."""
    want, have = leaf_shapes(expected), leaf_shapes(actual)
    found = [Difference(p, "missing", want[p], None) for p in sorted(want.keys() - have.keys())]
    found += [Difference(p, "unexpected", None, have[p]) for p in sorted(have.keys() - want.keys())]
    if shapes:
        found += [
            Difference(p, "shape", want[p], have[p])
            for p in sorted(want.keys() & have.keys())
            if want[p] != have[p]
        ]
    return found
