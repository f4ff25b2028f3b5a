"""How a stage runs, as opposed to what it trains (its config) and on what (its data)."""

from __future__ import annotations

import dataclasses
from typing import Any

from aejax.run.observe import Observe


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The options every stage takes; none of them changes what a run computes.

    `progress`: a progress bar and one line per epoch. `overwrite`: discard an earlier run in the
    stage folder (only once every input has loaded). `devices` > 1: train data-parallel over that
    many devices (`aejax.engine.parallel`). `observe`: TensorBoard events and a profiler trace
    (`aejax.run.observe`).
    """

    progress: bool = True
    overwrite: bool = False
    devices: int | None = None
    observe: Observe = Observe()

    @classmethod
    def resolve(cls, options: RunOptions | None, overrides: dict[str, Any]) -> RunOptions:
        """`options` (default: the defaults) with `overrides` by field name, e.g. progress=False."""
        if options is not None and not isinstance(options, cls):
            raise TypeError(f"options must be a RunOptions, got {options!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown run options {unknown}; the options are {sorted(names)}")
        return dataclasses.replace(options or cls(), **overrides)
