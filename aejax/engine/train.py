"""Training and evaluation as compiled programs: one `lax.scan` per epoch, one per evaluation.

A *metrics function* ``(params, images_uint8, labels, rng) -> {"loss": per_example, ...}`` describes
a task; everything here is task-agnostic. Batches are gathered on the device from a dataset that
was put there once; a padded last batch is masked, so every example counts exactly once.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from aejax.contracts import Augmentation, MetricsFn
from aejax.engine import compile_cache, parallel

TrainState = train_state.TrainState


def create_state(
    model, input_dim: int, tx: optax.GradientTransformation, key, mesh=None, recipe=None
) -> TrainState:
    """A fresh TrainState for `model` on inputs of `input_dim` features, made by one program
    (replicated on the device `mesh`, when there is one, as is `key`); a `recipe` names what
    `model` and `tx` are built from (`aejax.engine.untraced`)."""

    def init(key):
        params = model.init(key, jnp.zeros((1, input_dim), jnp.float32))["params"]
        state = initial_state(model.apply, params, tx)
        return state.step, state.params, state.opt_state  # the arrays; the functions stay here

    # Run eagerly, Flax's init would compile dozens of single-op programs; jitted it is one.
    recipe = recipe and f"{recipe}/init/{input_dim}"
    program = compile_on(init, (key,), mesh, options=ONCE_RUN_OPTIONS, recipe=recipe)
    step, params, opt_state = program(key)
    return TrainState(step=step, apply_fn=model.apply, params=params, tx=tx, opt_state=opt_state)


# A program that runs once per stage (parameter init) is dominated by its compile time. At XLA's
# -O1 it compiles in about half the time of the default -O2 and computes the same bits: threefry
# is integer hashing, the rest a few elementwise float ops (tests/train_test.py checks).
ONCE_RUN_OPTIONS = {"xla_backend_optimization_level": 1}


def compile_once_run(jitted, *args):
    """`jitted` (a `jax.jit` function) compiled for `args` with `ONCE_RUN_OPTIONS`."""
    return jitted.lower(*args).compile(ONCE_RUN_OPTIONS)


def compile_on(fn, args: tuple, mesh=None, donate_argnums=(), options=None, recipe=None):
    """`fn` compiled ahead of time for `args` (replicated results on a device `mesh`). On one
    device, a warm run loads the program an earlier run compiled (`aejax.engine.compile_cache`),
    untraced when a `recipe` names what `fn` is built from (`aejax.engine.untraced`)."""
    if mesh is None:
        return compile_cache.compile_program(fn, args, donate_argnums, options, recipe)
    jitted = parallel.jit_onto(fn, mesh, donate_argnums=donate_argnums)
    return jitted.lower(*args).compile(options)


def initial_state(apply_fn, params, tx: optax.GradientTransformation) -> TrainState:
    """A TrainState at step 0 for `params`, with a fresh optimizer state."""
    state = TrainState.create(apply_fn=apply_fn, params=params, tx=tx)
    # TrainState starts with a Python int step; as an int32 array it has the same type as after a
    # step, so the epoch program compiled for the first epoch serves every later one.
    return state.replace(step=jnp.zeros((), jnp.int32))


def with_fresh_optimizer(state: TrainState, params, mesh=None, recipe=None) -> TrainState:
    """`state` at `params` (e.g. with a transplanted encoder), its optimizer state made afresh
    for them by one program (replicated on the device `mesh`, when there is one)."""
    recipe = recipe and f"{recipe}/optimizer init"
    program = compile_on(state.tx.init, (params,), mesh, options=ONCE_RUN_OPTIONS, recipe=recipe)
    opt_state = program(params)
    return state.replace(params=params, opt_state=opt_state)


def masked_mean(values, mask):
    """Mean of `values` over the entries where `mask` is 1 (padding contributes nothing)."""
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def batch_plan(num_examples: int, batch_size: int):
    """``(steps, positions, mask)`` for covering `num_examples` in batches, padding masked.

    `positions` counts ``0 .. steps * batch_size - 1`` (slots past the data are padding) and
    `mask` ``(steps, batch_size)`` is 1 for real examples and 0 for padding.
    """
    # NumPy on the host: these are constants of the compiled programs, not work on the device.
    steps = math.ceil(num_examples / batch_size)
    positions = np.arange(steps * batch_size, dtype=np.int32)
    mask = (positions < num_examples).astype(np.float32).reshape(steps, batch_size)
    return steps, positions, mask


AUGMENT_STREAM = 1  # a step's augmentation key: fold_in(step key, 1); the step key is unchanged


def train_step(
    state: TrainState,
    batch: tuple[jax.Array, jax.Array, jax.Array],
    rng: jax.Array,
    metrics_fn: MetricsFn,
    augmentation: Augmentation | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step: ``(state, (images, labels, weights), rng) -> (state, metrics)``.

    The loss is `metrics_fn`'s per-example ``"loss"`` averaged over the examples of weight 1 (a
    padded last batch gives its padding weight 0); every metric comes back as such a mean.
    `augmentation` first extends the batch with generated examples. `make_epoch_fn` scans it.
    """
    images, labels, weights = _augmented(augmentation, rng, *batch)

    def loss_fn(params):
        values = metrics_fn(params, images, labels, rng)
        return masked_mean(values["loss"], weights), values

    grads, values = jax.grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)
    return state, {k: masked_mean(v, weights) for k, v in values.items()}


def _augmented(augmentation: Augmentation | None, rng, images, labels, weights):
    """The batch `augmentation` makes from a step's batch (itself without one)."""
    if augmentation is None:
        return images, labels, weights
    key = jax.random.fold_in(rng, AUGMENT_STREAM)
    return augmentation.augment(images, labels, weights, key, augmentation.generator)


def make_epoch_fn(
    metrics_fn: MetricsFn, num_examples: int, batch_size: int, mesh=None, augment=None
):
    """``epoch(state, images, labels, key[, indices, generator]) -> (state, per_step_metrics)``.

    One shuffled epoch of `train_step` over all examples, or over the `num_examples` rows that
    `indices` names (one subset per model under `jax.vmap`) without copying the dataset; with a
    device `mesh`, each batch is split over its devices (`aejax.engine.parallel`); `augment`
    (`aejax.model.generation.make_augment`) extends every batch, drawing on `generator`.
    """
    steps, _, mask = batch_plan(num_examples, batch_size)

    def epoch(state, images, labels, key, indices=None, generator=None):
        shuffle_key, noise_key = jax.random.split(key)
        order = jax.random.permutation(shuffle_key, num_examples)
        if indices is not None:
            order = indices[order]
        # Padding slots reuse real examples but carry zero weight. One gather per epoch lays the
        # batches out contiguously, so each step reads a slice instead of gathering rows.
        # Traced, not a constant: XLA sees an iota and needs no index array for the gather.
        positions = jnp.arange(steps * batch_size)
        batches = order[positions % num_examples].reshape(steps, batch_size)
        xs, ys = parallel.split_batches((images[batches], labels[batches]), mesh)
        augmentation = None if augment is None else Augmentation(augment, generator)

        def step(state, inputs):
            index, *batch = inputs
            rng = jax.random.fold_in(noise_key, index)
            return train_step(state, batch, rng, metrics_fn, augmentation)

        return jax.lax.scan(step, state, (jnp.arange(steps), xs, ys, mask))

    return epoch


def make_eval_fn(metrics_fn: MetricsFn, num_examples: int, batch_size: int, mesh=None):
    """``evaluate(params, images, labels) -> {metric: mean, "count": n}``, each example once."""
    steps, positions, mask = batch_plan(num_examples, batch_size)
    batches = np.minimum(positions, num_examples - 1).reshape(steps, batch_size)

    def evaluate(params, images, labels):
        def body(totals, inputs):
            batch, weight = inputs
            x, y = parallel.split_batches((images[batch], labels[batch]), mesh, batch_axis=0)
            values = metrics_fn(params, x, y, None)
            values["count"] = jnp.ones_like(weight)
            return {k: totals.get(k, 0.0) + jnp.sum(v * weight) for k, v in values.items()}, None

        first = jax.eval_shape(lambda: metrics_fn(params, images[:1], labels[:1], None))
        zeros = {k: jnp.zeros((), jnp.float32) for k in [*first, "count"]}
        totals, _ = jax.lax.scan(body, zeros, (batches, mask))
        count = totals.pop("count")
        return {**{k: v / count for k, v in totals.items()}, "count": count}

    return evaluate
