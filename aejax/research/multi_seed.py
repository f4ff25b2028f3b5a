"""Many seeds trained together as one compiled program.

`jax.vmap` maps the task-agnostic epoch of `aejax.engine.train` over a leading *seed* axis of the
train state (params and optimizer state), the random keys and the data indices (each seed may train
on its own subset of one shared, device-resident dataset). A whole run — every epoch of every seed —
is one `lax.scan` inside one AOT-compiled program, so small models that cannot fill the machine
alone share each step's dispatch and matrix multiplies instead of queueing one after another.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.contracts import Augmentation, MetricsFn
from aejax.data.datasets import Split
from aejax.engine.train import TrainState, compile_once_run, make_epoch_fn, make_eval_fn


def init_params(model, input_dim: int, keys):
    """``model.init`` params for each key (as `create_state` draws them), stacked per seed."""
    # One jitted init called per key: vmapping Flax's init over threefry keys compiles ~5x slower.
    init = jax.jit(lambda key: model.init(key, jnp.zeros((1, input_dim), jnp.float32))["params"])
    init = compile_once_run(init, keys[0])
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *[init(key) for key in keys])


def make_states(apply_fn, params, tx: optax.GradientTransformation) -> TrainState:
    """Stacked TrainStates for stacked `params`, each with a fresh optimizer state."""
    count = len(jax.tree.leaves(params)[0])
    opt_state = jax.jit(jax.vmap(tx.init))(params)
    step = jnp.zeros((count,), jnp.int32)
    return TrainState(step=step, apply_fn=apply_fn, params=params, tx=tx, opt_state=opt_state)


def init_states(model, input_dim: int, tx: optax.GradientTransformation, keys) -> TrainState:
    """One fresh TrainState per key (as `create_state` makes it), stacked along a seed axis."""
    return make_states(model.apply, init_params(model, input_dim, keys), tx)


def make_run_fn(
    metrics_fn: MetricsFn, num_examples: int, batch_size: int, epochs: int, augment=None
):
    """``run(state, images, labels, key, indices[, generator]) -> (state, per_epoch_metrics)``
    (per-epoch means); `augment` extends every batch, drawing on `generator`."""
    epoch_fn = make_epoch_fn(metrics_fn, num_examples, batch_size, augment=augment)

    def run(state, images, labels, key, indices, generator=None):
        def body(state, epoch):
            key_e = jax.random.fold_in(key, epoch)
            state, metrics = epoch_fn(state, images, labels, key_e, indices, generator)
            return state, jax.tree.map(jnp.mean, metrics)

        return jax.lax.scan(body, state, jnp.arange(epochs))

    return run


def compile_run(
    metrics_fn: MetricsFn,
    states,
    train: Split,
    keys,
    indices,
    batch_size,
    epochs,
    augmentation: Augmentation | None = None,
):
    """``run(states, images, labels, keys, indices)`` vmapped over seeds, compiled ahead of time.

    Each seed trains `epochs` epochs on the rows of `train` that its row of `indices` names; the
    states are donated. An `augmentation`'s generator holds one generator per seed, stacked like
    the states (`aejax.model.generation`).
    """
    augment, generators = augmentation or (None, None)
    run = make_run_fn(metrics_fn, indices.shape[1], batch_size, epochs, augment)
    vmapped = jax.vmap(run, in_axes=(0, None, None, 0, 0, 0))
    args = (states, *train, keys, indices, generators)
    compiled = jax.jit(vmapped, donate_argnums=0).lower(*args).compile()
    return lambda states, images, labels, keys, indices: compiled(
        states, images, labels, keys, indices, generators
    )


def make_evaluator(metrics_fn: MetricsFn, num_examples: int, batch_size: int = 1000):
    """``evaluate(stacked_params, images, labels) -> per-seed metrics`` (NumPy), jitted once."""
    eval_fn = make_eval_fn(metrics_fn, num_examples, batch_size)
    jitted = jax.jit(jax.vmap(eval_fn, in_axes=(0, None, None)))

    def evaluate(params, images, labels):
        values = jax.device_get(jitted(params, images, labels))
        return {k: np.asarray(v) for k, v in values.items()}

    return evaluate


def seed_keys(seeds, stream: int):
    """One key per seed for a random stream: ``fold_in(key(seed), stream)``."""
    return jnp.stack([jax.random.fold_in(jax.random.key(s), stream) for s in seeds])
