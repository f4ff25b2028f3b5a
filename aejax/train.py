"""Training and evaluation as compiled programs: one `lax.scan` per epoch, one per evaluation.

A *metrics function* ``(params, images_uint8, labels, rng) -> {"loss": per_example, ...}`` describes
a task; everything here is task-agnostic. Batches are gathered on the device from a dataset that
was put there once; a padded last batch is masked, so every example counts exactly once.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from aejax.data import normalize
from aejax.errors import UserError
from aejax.losses import (
    correct_per_example,
    cross_entropy_per_example,
    masked_mean,
)

MetricsFn = Callable[[Any, jax.Array, jax.Array, jax.Array], dict[str, jax.Array]]
TrainState = train_state.TrainState


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite."""


def create_state(model, input_dim: int, tx: optax.GradientTransformation, key) -> TrainState:
    """A fresh TrainState for `model` on inputs of `input_dim` features."""
    params = model.init(key, jnp.zeros((1, input_dim), jnp.float32))["params"]
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    # TrainState starts with a Python int step; as an int32 array it has the same type as after
    # a step, so the epoch program compiled for the first epoch serves every later one.
    return state.replace(step=jnp.zeros((), jnp.int32))


def classification_metrics(apply_fn) -> MetricsFn:
    """Per-example softmax cross-entropy and correctness."""

    def metrics(params, images, labels, rng):
        del rng
        logits = apply_fn({"params": params}, normalize(images))
        return {
            "loss": cross_entropy_per_example(logits, labels),
            "accuracy": correct_per_example(logits, labels),
        }

    return metrics


def batch_plan(num_examples: int, batch_size: int):
    """Number of batches and ``(indices, mask)`` for covering `num_examples` with padding masked."""
    steps = math.ceil(num_examples / batch_size)
    positions = jnp.arange(steps * batch_size)
    mask = (positions < num_examples).astype(jnp.float32).reshape(steps, batch_size)
    return steps, positions, mask


def make_epoch_fn(metrics_fn: MetricsFn, num_examples: int, batch_size: int):
    """``epoch(state, images, labels, key[, indices]) -> (state, per_step_metrics)``.

    One shuffled epoch over all examples, or over the `num_examples` rows that `indices` names:
    a subset (or, under `jax.vmap`, one subset per model) without copying the dataset.
    """
    steps, positions, mask = batch_plan(num_examples, batch_size)

    def epoch(state, images, labels, key, indices=None):
        shuffle_key, noise_key = jax.random.split(key)
        order = jax.random.permutation(shuffle_key, num_examples)
        if indices is not None:
            order = indices[order]
        # Padding slots reuse real examples but carry zero weight. One gather per epoch lays the
        # batches out contiguously, so each step reads a slice instead of gathering rows.
        batches = order[positions % num_examples].reshape(steps, batch_size)
        xs, ys = images[batches], labels[batches]

        def step(state, inputs):
            index, x, y, weight = inputs
            rng = jax.random.fold_in(noise_key, index)

            def loss_fn(params):
                values = metrics_fn(params, x, y, rng)
                return masked_mean(values["loss"], weight), values

            grads, values = jax.grad(loss_fn, has_aux=True)(state.params)
            state = state.apply_gradients(grads=grads)
            return state, {k: masked_mean(v, weight) for k, v in values.items()}

        return jax.lax.scan(step, state, (jnp.arange(steps), xs, ys, mask))

    return epoch


def make_eval_fn(metrics_fn: MetricsFn, num_examples: int, batch_size: int):
    """``evaluate(params, images, labels) -> {metric: mean, "count": n}``, each example once."""
    steps, positions, mask = batch_plan(num_examples, batch_size)
    batches = jnp.minimum(positions, num_examples - 1).reshape(steps, batch_size)

    def evaluate(params, images, labels):
        def body(totals, inputs):
            batch, weight = inputs
            values = metrics_fn(params, images[batch], labels[batch], None)
            values["count"] = jnp.ones_like(weight)
            return {k: totals.get(k, 0.0) + jnp.sum(v * weight) for k, v in values.items()}, None

        first = jax.eval_shape(lambda: metrics_fn(params, images[:1], labels[:1], None))
        zeros = {k: jnp.zeros((), jnp.float32) for k in [*first, "count"]}
        totals, _ = jax.lax.scan(body, zeros, (batches, mask))
        count = totals.pop("count")
        return {**{k: v / count for k, v in totals.items()}, "count": count}

    return evaluate


@dataclasses.dataclass
class EpochRecord:
    """What one epoch produced, as plain Python numbers."""

    epoch: int
    train: dict[str, float]
    test: dict[str, float]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        flat = {f"train_{k}": v for k, v in self.train.items()}
        flat.update({f"test_{k}": v for k, v in self.test.items() if k != "count"})
        return {"epoch": self.epoch, **flat, "seconds": self.seconds}


@dataclasses.dataclass
class CompiledStage:
    """The two compiled programs of a stage and how long compiling them took."""

    epoch: Any
    evaluate: Any
    compile_s: float


def compile_stage(metrics_fn: MetricsFn, state, train_arrays, test_arrays, batch_size: int, key):
    """Compile the epoch and eval programs once, ahead of time (so nothing recompiles later)."""
    start = time.perf_counter()
    epoch_fn = make_epoch_fn(metrics_fn, len(train_arrays[1]), batch_size)
    epoch = jax.jit(epoch_fn, donate_argnums=0).lower(state, *train_arrays, key).compile()
    evaluate = compile_eval(metrics_fn, state.params, test_arrays, batch_size)
    return CompiledStage(epoch, evaluate, time.perf_counter() - start)


def compile_eval(metrics_fn: MetricsFn, params, arrays, batch_size: int):
    """The evaluation program for `arrays` (images, labels), compiled ahead of time."""
    eval_fn = make_eval_fn(metrics_fn, len(arrays[1]), batch_size)
    return jax.jit(eval_fn).lower(params, *arrays).compile()


def run_epoch(compiled: CompiledStage, state, train_arrays, test_arrays, key, epoch: int):
    """Train one epoch, then evaluate; metrics reach the host once each. Times training only."""
    start = time.perf_counter()
    state, step_metrics = compiled.epoch(state, *train_arrays, key)
    step_metrics = jax.device_get(step_metrics)
    seconds = time.perf_counter() - start
    test_metrics = jax.device_get(compiled.evaluate(state.params, *test_arrays))
    train = {k: float(np.mean(v)) for k, v in step_metrics.items()}
    test = {k: float(v) for k, v in test_metrics.items()}
    if not all(math.isfinite(v) for v in [*train.values(), *test.values()]):
        raise TrainingDivergedError(
            f"loss became NaN/Inf in epoch {epoch}; the last good checkpoint is kept, "
            "try a smaller --lr"
        )
    return state, EpochRecord(epoch, train, test, seconds), step_metrics["loss"]


def steady_state_seconds(records: list[EpochRecord]) -> float | None:
    """Median epoch time excluding the first epoch of this process (it pays for warm-up)."""
    times = [r.seconds for r in records[1:]] or [r.seconds for r in records]
    return statistics.median(times) if times else None
