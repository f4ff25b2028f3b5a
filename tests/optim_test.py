"""Fine-tuning modes: frozen and discriminative encoders, through the optimizer only."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.config import ModelConfig, TransferConfig
from aejax.engine.train import create_state, make_epoch_fn
from aejax.model.models import make_classifier
from aejax.model.objectives import classification_metrics
from aejax.model.optim import make_optimizer, param_labels

SMALL = ModelConfig(hidden=32, latent=16)


def _state(mode: str, scale: float = 0.1, lr: float = 1e-3):
    model = make_classifier(SMALL)
    tx = make_optimizer(lr, TransferConfig(mode=mode, encoder_lr_scale=scale))
    return model, create_state(model, 784, tx, jax.random.key(0))


def _updates(before, after):
    return jax.tree.map(lambda a, b: np.asarray(b) - np.asarray(a), before, after)


def _one_step(mode, data, scale=0.1):
    model, state = _state(mode, scale)
    metrics_fn = classification_metrics(model.apply)
    images, labels = jnp.asarray(data.train_images[:100]), jnp.asarray(data.train_labels[:100])

    def loss(params):
        return jnp.mean(metrics_fn(params, images, labels, None)["loss"])

    after = state.apply_gradients(grads=jax.grad(loss)(state.params))
    return _updates(state.params, after.params)


def test_labels_split_encoder_from_head():
    _, state = _state("full")
    labels = param_labels(state.params)
    assert set(jax.tree.leaves(labels["encoder"])) == {"encoder"}
    assert set(jax.tree.leaves(labels["head"])) == {"head"}


def test_frozen_encoder_stays_bit_identical_while_the_head_learns(small_fashion):
    model, state = _state("frozen", lr=1e-2)
    start = jax.tree.map(np.asarray, state.params)
    epoch = jax.jit(make_epoch_fn(classification_metrics(model.apply), 1000, 100))
    images, labels = (
        jnp.asarray(small_fashion.train_images),
        jnp.asarray(small_fashion.train_labels),
    )
    for e in range(2):
        state, metrics = epoch(state, images[:1000], labels[:1000], jax.random.key(e))
    same = jax.tree.map(
        np.array_equal, start["encoder"], jax.tree.map(np.asarray, state.params["encoder"])
    )
    assert all(jax.tree.leaves(same))
    assert not np.array_equal(start["head"]["kernel"], state.params["head"]["kernel"])
    assert float(metrics["loss"][-1]) < float(metrics["loss"][0])
    # No Adam moments are kept for the frozen encoder: set_to_zero holds no state.
    sizes = [x.size for x in jax.tree.leaves(state.opt_state)]
    head_size = sum(x.size for x in jax.tree.leaves(state.params["head"]))
    assert sum(sizes) <= 2 * head_size + 4


def test_discriminative_first_update_scales_the_encoder_only(small_fashion):
    full = _one_step("full", small_fashion)
    disc = _one_step("discriminative", small_fashion, scale=0.1)
    for name in ("hidden", "latent"):
        for leaf in ("kernel", "bias"):
            np.testing.assert_allclose(
                disc["encoder"][name][leaf], 0.1 * full["encoder"][name][leaf], rtol=1e-4, atol=1e-9
            )
    np.testing.assert_allclose(disc["head"]["kernel"], full["head"]["kernel"], rtol=1e-6)
    ratio = np.linalg.norm(disc["encoder"]["hidden"]["kernel"]) / np.linalg.norm(
        full["encoder"]["hidden"]["kernel"]
    )
    assert abs(ratio - 0.1) < 1e-3


def test_full_mode_is_plain_adam():
    tx = make_optimizer(1e-3, TransferConfig())
    params = {"encoder": {"w": jnp.ones(3)}, "head": {"w": jnp.ones(2)}}
    reference = optax.adam(1e-3).init(params)
    assert jax.tree.structure(tx.init(params)) == jax.tree.structure(reference)
