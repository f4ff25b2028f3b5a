"""Seeds trained together under vmap give what each seed gives alone, in one compiled program."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.config import ModelConfig
from aejax.contracts import Augmentation
from aejax.data.datasets import Split
from aejax.data.splits import balanced_indices
from aejax.engine.train import create_state
from aejax.model.models import make_classifier
from aejax.model.objectives import classification_metrics
from aejax.research import multi_seed

SMALL = ModelConfig(hidden=32, latent=16)


def test_vmapped_seeds_equal_each_seed_trained_alone(small_fashion):
    model, tx = make_classifier(SMALL), optax.adam(1e-3)
    metrics_fn = classification_metrics(model.apply)
    train = Split(jnp.asarray(small_fashion.train_images), jnp.asarray(small_fashion.train_labels))
    seeds = [0, 1, 2]
    indices = jnp.asarray(
        np.stack([balanced_indices(small_fashion.train_labels, 200, s) for s in seeds])
    )
    init_keys, run_keys = multi_seed.seed_keys(seeds, 0), multi_seed.seed_keys(seeds, 1)
    states = multi_seed.init_states(model, 784, tx, init_keys)
    run = multi_seed.compile_run(metrics_fn, states, train, run_keys, indices, 50, 3)
    together, metrics = run(states, *train, run_keys, indices)
    assert metrics["loss"].shape == (3, 3)  # (seeds, epochs)
    alone_fn = jax.jit(multi_seed.make_run_fn(metrics_fn, 200, 50, 3))
    for i, _ in enumerate(seeds):
        state = create_state(model, 784, tx, init_keys[i])
        alone, _ = alone_fn(state, *train, run_keys[i], indices[i])
        for a, b in zip(
            jax.tree.leaves(alone.params), jax.tree.leaves(together.params), strict=True
        ):
            np.testing.assert_allclose(b[i], a, rtol=1e-4, atol=1e-5)
    # Different seeds really differ (their own init, order and subset).
    kernels = together.params["head"]["kernel"]
    assert not np.allclose(kernels[0], kernels[1])


def test_evaluator_scores_each_seed(small_fashion):
    model = make_classifier(SMALL)
    keys = multi_seed.seed_keys([0, 1], 0)
    states = multi_seed.init_states(model, 784, optax.adam(1e-3), keys)
    images = jnp.asarray(small_fashion.test_images[:250])
    labels = jnp.asarray(small_fashion.test_labels[:250])
    evaluate = multi_seed.make_evaluator(classification_metrics(model.apply), 250, batch_size=100)
    result = evaluate(states.params, images, labels)
    assert result["accuracy"].shape == (2,) and result["count"].tolist() == [250, 250]
    for i in range(2):
        params = jax.tree.map(lambda x, i=i: x[i], states.params)
        logits = model.apply({"params": params}, images.astype(jnp.float32) / 127.5 - 1)
        np.testing.assert_allclose(
            result["accuracy"][i], jnp.mean(jnp.argmax(logits, -1) == labels), rtol=1e-6
        )


def test_each_epoch_and_each_seed_draws_its_own_batches():
    # A "loss" that is the square of a batch's sum of example ids: its mean over an epoch's steps
    # depends on which examples share a batch, so equal means say "the same batches".
    def grouping(params, images, ids, rng):
        return {"loss": jnp.sum(ids.astype(jnp.float32)) ** 2 + 0.0 * jnp.sum(params["w"])}

    seeds, epochs = [0, 1], 4

    tx = optax.sgd(0.0)

    def states():  # each run donates them
        return multi_seed.make_states(None, {"w": jnp.zeros((len(seeds), 1))}, tx)

    train = Split(jnp.zeros((60, 4), jnp.uint8), jnp.arange(60))
    indices = jnp.tile(jnp.arange(60), (len(seeds), 1))
    keys = multi_seed.seed_keys(seeds, 1)
    run = multi_seed.compile_run(grouping, states(), train, keys, indices, 10, epochs)
    per_epoch = np.asarray(run(states(), *train, keys, indices)[1]["loss"])  # (seeds, epochs)
    for seed in range(len(seeds)):
        assert len(set(per_epoch[seed].tolist())) == epochs  # every epoch its own batches
    assert not np.array_equal(per_epoch[0], per_epoch[1])  # and every seed
    again = np.asarray(run(states(), *train, keys, indices)[1]["loss"])
    np.testing.assert_array_equal(per_epoch, again)  # drawn from the keys alone


def test_each_seed_generates_from_its_own_generator():
    # An augmentation that appends one example holding its generator's value: each seed's mean
    # "pixel" over a step's batch tells which generator it drew on.
    def append_generated(images, labels, weights, key, generator):
        made = jnp.full((1, images.shape[1]), generator[0], images.dtype)
        return (
            jnp.concatenate([images, made]),
            jnp.concatenate([labels, labels[:1]]),
            jnp.concatenate([weights, jnp.ones(1, weights.dtype)]),
        )

    def pixel_mean(params, images, labels, rng):
        return {"loss": jnp.mean(images.astype(jnp.float32), axis=1) + 0.0 * params["w"][0]}

    tx = optax.sgd(0.0)
    states = multi_seed.make_states(None, {"w": jnp.zeros((2, 1))}, tx)
    train = Split(jnp.zeros((20, 4), jnp.uint8), jnp.arange(20))
    indices, keys = jnp.tile(jnp.arange(20), (2, 1)), multi_seed.seed_keys([0, 1], 1)
    generators = jnp.array([[11], [220]], jnp.uint8)  # (seeds, 1): one generator per seed
    augmentation = Augmentation(append_generated, generators)
    run = multi_seed.compile_run(pixel_mean, states, train, keys, indices, 10, 1, augmentation)
    per_epoch = np.asarray(run(states, *train, keys, indices)[1]["loss"])
    np.testing.assert_allclose(per_epoch[:, 0], [11 / 11, 220 / 11], rtol=1e-6)
