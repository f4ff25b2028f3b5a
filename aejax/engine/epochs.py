"""A stage's epochs as compiled programs: one program per epoch that trains (a `lax.scan` over
the batches) and then tests, its metrics brought to the host once; the building blocks are in
`aejax.engine.train`."""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import time
from typing import Any

import jax
import numpy as np

from aejax.contracts import Augmentation, MetricsFn
from aejax.data.datasets import DeviceData, Split
from aejax.engine.train import compile_on, make_epoch_fn, make_eval_fn
from aejax.errors import TrainingDivergedError


@dataclasses.dataclass
class EpochRecord:
    """What one epoch produced, as plain Python numbers; `seconds` is the epoch's program
    (training, then the test), `eval_seconds` the validation after it."""

    epoch: int
    train: dict[str, float]
    test: dict[str, float]
    seconds: float
    eval_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        flat = {f"train_{k}": v for k, v in self.train.items()}
        flat.update({f"test_{k}": v for k, v in self.test.items() if k != "count"})
        return {"epoch": self.epoch, **flat, "seconds": self.seconds, "eval_s": self.eval_seconds}


@dataclasses.dataclass
class CompiledStage:
    """A stage's compiled epoch program and how long getting it took.

    `epoch_and_test` trains one epoch, then tests the new params: one dispatch and one host sync
    per epoch. `epoch` (training alone) and `evaluate` (a test alone, as after restoring the best
    epoch) are compiled when first asked for.
    """

    epoch_and_test: Any
    compile_s: float
    _compile_later: Any = dataclasses.field(repr=False, default=None)

    @functools.cached_property
    def epoch(self):
        """``epoch(state, images, labels, key) -> (state, per_step_metrics)``."""
        return self._compile_later("train")

    @functools.cached_property
    def evaluate(self):
        """``evaluate(params, images, labels) -> {metric: mean, "count": n}``."""
        return self._compile_later("eval")


def compile_stage(
    metrics_fn: MetricsFn,
    state,
    data: DeviceData,
    batch_size: int,
    key,
    mesh=None,
    augmentation: Augmentation | None = None,
    recipe: str | None = None,
):
    """Compile the epoch program (train, then test) once, ahead of time, so that nothing
    recompiles later.

    With a device `mesh`, `state`, `data` and `key` must already be replicated on it.
    With an `augmentation`, training batches are augmented, tests never. A `recipe` names all
    that `metrics_fn` and `augmentation` are built from (`aejax.engine.untraced`).
    """
    start = time.perf_counter()
    augment, generator = augmentation or (None, None)
    epoch_fn = make_epoch_fn(metrics_fn, len(data.train.labels), batch_size, mesh, augment)
    eval_fn = make_eval_fn(metrics_fn, len(data.test.labels), batch_size, mesh)
    extra = () if augment is None else (None, generator)  # no indices; the generator

    def epoch_and_test(state, images, labels, key, test_images, test_labels, *extra):
        state, step_metrics = epoch_fn(state, images, labels, key, *extra)
        return state, step_metrics, eval_fn(state.params, test_images, test_labels)

    args = (state, *data.train, key, *data.test, *extra)
    recipe_of = _roles(recipe, batch_size)
    program = compile_on(epoch_and_test, args, mesh, donate_argnums=(0,), recipe=recipe_of("epoch"))
    # Shapes, not the arrays: `state` is donated to the first epoch before these are compiled.
    like = jax.tree.map(abstract, (state, *data.train, key))
    later = functools.partial(
        _compile_later, metrics_fn, epoch_fn, like, data.test, extra, batch_size, mesh, recipe_of
    )
    seconds = time.perf_counter() - start
    return CompiledStage(_called_plainly(program, extra), seconds, later)


def abstract(x):
    """An array's shape, dtype and placement; anything else (a Python number) itself."""
    if not isinstance(x, jax.Array):
        return x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)


def _compile_later(metrics_fn, epoch_fn, like, test, extra, batch_size, mesh, recipe_of, which):
    """A stage's training epoch alone (`which` "train") or test alone ("eval"), compiled."""
    if which == "eval":
        params = like[0].params
        return compile_eval(metrics_fn, params, test, batch_size, mesh, recipe_of(which))
    args = (*like, *extra)
    epoch = compile_on(epoch_fn, args, mesh, donate_argnums=(0,), recipe=recipe_of(which))
    return _called_plainly(epoch, extra)


def _roles(recipe: str | None, batch_size: int):
    """The recipe of each of a stage's programs (None: none has one)."""
    return lambda role: recipe and f"{recipe}/{role}/{batch_size}"


def _called_plainly(program, extra: tuple):
    """`program` called without its trailing `extra` arguments."""
    if not extra:
        return program
    return lambda *args: program(*args, *extra)


def compile_eval(
    metrics_fn: MetricsFn, params, split: Split, batch_size: int, mesh=None, recipe=None
):
    """The evaluation program for `split`, compiled ahead of time."""
    eval_fn = make_eval_fn(metrics_fn, len(split.labels), batch_size, mesh)
    return compile_on(eval_fn, (params, *split), mesh, recipe=recipe)


def run_epoch(compiled: CompiledStage, state, data: DeviceData, key, epoch: int):
    """Train one epoch, then test, in one program; its metrics reach the host at once. The
    record's `seconds` time both: the test is part of the epoch's program."""
    start = time.perf_counter()
    with jax.profiler.TraceAnnotation("epoch"):  # a named region of a profiler trace
        state, step_metrics, test_metrics = compiled.epoch_and_test(
            state, *data.train, key, *data.test
        )
        step_metrics, test_metrics = jax.device_get((step_metrics, test_metrics))
    seconds = time.perf_counter() - start
    train = {k: float(np.mean(v)) for k, v in step_metrics.items()}
    test = {k: float(v) for k, v in test_metrics.items()}
    if not all(math.isfinite(v) for v in [*train.values(), *test.values()]):
        raise _diverged(epoch, step_metrics["loss"], int(jax.device_get(state.step)))
    record = EpochRecord(epoch, train, test, seconds)
    return state, record, step_metrics["loss"]


def _diverged(epoch: int, losses: np.ndarray, steps_done: int) -> TrainingDivergedError:
    """What to say when an epoch's metrics are NaN/Inf: a loss that was already so before the
    first update comes from the data, the model or the loss, not from the learning rate."""
    bad = np.flatnonzero(~np.isfinite(losses))
    before_any_update = bad.size > 0 and steps_done - len(losses) + bad[0] == 0
    kept = "the last good checkpoint is kept"
    if before_any_update:
        return TrainingDivergedError(
            f"loss was NaN/Inf in epoch {epoch} before the first update, so the model, the loss "
            f"or the data produce it, not the learning rate; {kept}"
        )
    return TrainingDivergedError(
        f"loss became NaN/Inf in epoch {epoch}; {kept}; a smaller learning rate, or a look at "
        "the data and the loss settings, may help",
        settings=("lr",),
    )


def steady_state_seconds(seconds: list[float]) -> float | None:
    """Median of epoch times, leaving out the first (it pays for warm-up) when there are more."""
    times = seconds[1:] or seconds
    return statistics.median(times) if times else None
