"""The recipe's arithmetic written out in numpy, and the pretraining variants: BCE from logits,
denoising noise that touches inputs only, the VAE."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.config import ModelConfig, ObjectiveConfig
from aejax.data.datasets import normalize
from aejax.engine.train import masked_mean
from aejax.model import objectives
from aejax.model.models import ENCODER, make_autoencoder, make_classifier
from aejax.model.objectives import (
    bce_per_example,
    classification_metrics,
    corrupt,
    reconstruct,
    reconstruction_metrics,
)


def _identity(variables, x):
    return x


def test_bce_equals_the_reference_formula(small_fashion):
    target = np.asarray(small_fashion.train_images[:8], np.float64) / 255.0
    logits = np.random.default_rng(0).normal(0.0, 3.0, target.shape)
    p = 1.0 / (1.0 + np.exp(-logits))
    reference = -np.mean(target * np.log(p) + (1 - target) * np.log(1 - p), axis=-1)
    got = bce_per_example(jnp.asarray(logits, jnp.float32), jnp.asarray(target, jnp.float32))
    np.testing.assert_allclose(got, reference, rtol=1e-5)


def test_bce_is_finite_for_saturated_logits():
    logits = jnp.array([[-200.0, 200.0, 0.0]])
    loss, grad = jax.value_and_grad(lambda z: bce_per_example(z, jnp.array([[1.0, 0.0, 0.5]]))[0])(
        logits
    )
    np.testing.assert_allclose(loss, (200 + 200 + np.log(2)) / 3, rtol=1e-5)
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_bce_objective_targets_pixels_in_unit_range(small_fashion):
    # Logits that vary with the input (at logit 0 every target gives the same loss, log 2).
    images = jnp.asarray(small_fashion.train_images[:4])
    metrics = reconstruction_metrics(lambda v, x: 3.0 * x, ObjectiveConfig(loss="bce"))
    logits = 3.0 * normalize(images)
    expected = bce_per_example(logits, images.astype(jnp.float32) / 255.0)
    np.testing.assert_allclose(metrics({}, images, None, None)["loss"], expected, rtol=1e-6)


def test_the_vae_loss_alone_makes_a_variational_objective(small_fashion):
    images = jnp.asarray(small_fashion.train_images[:4])
    for loss in ("mse", "bce", "vae"):
        objective = ObjectiveConfig(loss=loss)
        assert objectives.is_variational(objective) == (loss == "vae")
        model = make_autoencoder(
            ModelConfig(hidden=8, latent=4), 784, objectives.uses_logits(objective), loss == "vae"
        )
        params = model.init(jax.random.key(0), jnp.zeros((1, 784)))["params"]
        values = objectives.pretraining_metrics(model, objective)(params, images, None, None)
        assert ("kl" in values) == (loss == "vae"), loss


def test_reconstructions_of_a_logit_decoder_are_pixels_in_minus_one_one():
    logits = jnp.array([[-50.0, 0.0, 50.0, np.log(3.0)]])
    for loss in ("bce", "vae"):
        pixels = reconstruct(lambda v, x: x, None, logits, ObjectiveConfig(loss=loss))
        np.testing.assert_allclose(pixels, [[-1.0, 0.0, 1.0, 0.5]], atol=1e-6)  # 2σ(z) − 1
    assert reconstruct(lambda v, x: x, None, logits, ObjectiveConfig()) is logits  # tanh: as is


def test_the_reparameterised_code_has_the_posteriors_mean_and_spread():
    mean, log_variance = jnp.full((20000, 2), 1.5), jnp.log(jnp.full((20000, 2), 0.25))
    code = np.asarray(objectives.sample_code(mean, log_variance, jax.random.key(0)))
    np.testing.assert_allclose(code.mean(axis=0), 1.5, atol=0.02)
    np.testing.assert_allclose(code.std(axis=0), 0.5, rtol=0.03)
    assert objectives.sample_code(mean, log_variance, None) is mean  # evaluation: the mean


@pytest.mark.parametrize("noise", ["gaussian:0.5", "mask:0.3"])
def test_noise_changes_inputs_but_not_targets(small_fashion, noise):
    images = jnp.asarray(small_fashion.train_images[:50])
    clean = normalize(images)
    rng = jax.random.key(3)
    noisy = corrupt(clean, rng, noise)
    assert not np.array_equal(noisy, clean)
    # An identity "autoencoder" reconstructs its (noisy) input; the loss is measured against the
    # clean images, so it equals the noise energy, not zero.
    metrics = reconstruction_metrics(_identity, ObjectiveConfig(noise=noise))
    loss = metrics({}, images, None, rng)["loss"]
    np.testing.assert_allclose(loss, jnp.mean(jnp.square(noisy - clean), axis=-1), rtol=1e-6)
    assert float(jnp.min(loss)) > 0
    # Evaluation (no rng) scores clean inputs; a later step draws fresh noise.
    assert float(jnp.max(metrics({}, images, None, None)["loss"])) == 0.0
    assert not np.array_equal(corrupt(clean, jax.random.fold_in(rng, 1), noise), noisy)


def test_noise_amounts_are_what_was_asked(small_fashion):
    clean = normalize(jnp.asarray(small_fashion.train_images[:500]))
    gauss = corrupt(clean, jax.random.key(0), "gaussian:0.5") - clean
    assert abs(float(jnp.std(gauss)) - 0.5) < 0.01
    masked = corrupt(jnp.zeros_like(clean), jax.random.key(0), "mask:0.3")
    assert abs(float(jnp.mean(masked == -1.0)) - 0.3) < 0.01


def test_logit_decoder_is_the_tanh_decoder_without_its_tanh():
    config = ModelConfig(hidden=16, latent=4)
    x = jax.random.uniform(jax.random.key(1), (5, 784), minval=-1, maxval=1)
    tanh_model, logit_model = make_autoencoder(config, 784), make_autoencoder(config, 784, True)
    params = tanh_model.init(jax.random.key(0), x)["params"]
    np.testing.assert_allclose(
        jnp.tanh(logit_model.apply({"params": params}, x)), tanh_model.apply({"params": params}, x)
    )
    shown = reconstruct(logit_model.apply, params, x, ObjectiveConfig(loss="bce"))
    assert float(jnp.min(shown)) >= -1 and float(jnp.max(shown)) <= 1


def test_vae_kl_is_the_closed_form_of_a_hand_computed_example():
    mean = jnp.array([[1.0, 0.0]])
    log_variance = jnp.array([[0.0, np.log(4.0)]])
    # 1/2 * sum(var + mean^2 - 1 - log var) = 1/2 * ((1 + 1 - 1 - 0) + (4 + 0 - 1 - log 4))
    expected = 0.5 * (1.0 + 3.0 - np.log(4.0))
    np.testing.assert_allclose(objectives.kl_per_example(mean, log_variance), [expected], rtol=1e-6)
    np.testing.assert_allclose(objectives.kl_per_example(jnp.zeros((1, 3)), jnp.zeros((1, 3))), [0])


def test_vae_without_kl_and_variance_is_its_reconstruction_loss(small_fashion):
    images = jnp.asarray(small_fashion.test_images[:16])
    model = make_autoencoder(ModelConfig(hidden=32, latent=8), images.shape[1], True, True)
    params = model.init(jax.random.key(0), jnp.zeros((1, images.shape[1])))["params"]
    assert set(params) == {"encoder", "log_variance", "decoder"}
    mean = model.apply({"params": params}, normalize(images), method=model.encode)
    dead = jnp.full(mean.shape, -jnp.inf)  # zero variance: the sample is the mean
    np.testing.assert_array_equal(objectives.sample_code(mean, dead, jax.random.key(1)), mean)
    metrics = objectives.vae_metrics(model, ObjectiveConfig(loss="vae", beta=0.0))
    values = metrics(params, images, None, None)  # evaluation decodes the mean code
    logits = model.apply({"params": params}, mean, method=model.decode)
    expected = objectives.bce_per_example(logits, (normalize(images) + 1.0) / 2.0)
    np.testing.assert_allclose(values["loss"], expected, rtol=1e-6)
    np.testing.assert_allclose(values["reconstruction"], expected, rtol=1e-6)
    with_kl = objectives.vae_metrics(model, ObjectiveConfig(loss="vae", beta=2.0))
    np.testing.assert_allclose(
        with_kl(params, images, None, None)["loss"],
        expected + 2.0 * values["kl"] / images.shape[1],
        rtol=1e-6,
    )
    sampled = metrics(params, images, None, jax.random.key(2))["loss"]  # training samples a code
    assert not np.allclose(sampled, expected)


def _numpy_encoder(p, x):
    hidden = np.maximum(x @ p["hidden"]["kernel"] + p["hidden"]["bias"], 0.0)  # ReLU
    return hidden @ p["latent"]["kernel"] + p["latent"]["bias"]


def test_the_recipe_is_the_reference_arithmetic_written_out_in_numpy():
    """The tutorial's networks, pixels and losses by hand, without PyTorch: encoder
    784→128→ReLU→64, decoder 64→128→ReLU→784→tanh, pixels x/127.5 − 1, MSE as the mean over pixels,
    cross-entropy as −log softmax, each averaged over the batch."""
    config = ModelConfig(hidden=8, latent=4)
    images = np.random.default_rng(0).integers(0, 256, (5, 12)).astype(np.uint8)
    labels = np.array([0, 3, 9, 3, 1], np.int32)
    x = images.astype(np.float64) / 127.5 - 1.0
    ae, clf = make_autoencoder(config, 12), make_classifier(config)
    pa = ae.init(jax.random.key(0), jnp.zeros((1, 12)))["params"]
    pc = clf.init(jax.random.key(1), jnp.zeros((1, 12)))["params"]
    a, c = (jax.tree.map(lambda v: np.asarray(v, np.float64), p) for p in (pa, pc))

    d = a["decoder"]
    code = _numpy_encoder(a[ENCODER], x)
    hidden = np.maximum(code @ d["hidden"]["kernel"] + d["hidden"]["bias"], 0.0)
    reconstruction = np.tanh(hidden @ d["output"]["kernel"] + d["output"]["bias"])
    got = reconstruction_metrics(ae.apply, ObjectiveConfig())(pa, images, labels, None)["loss"]
    np.testing.assert_allclose(got, np.mean((reconstruction - x) ** 2, axis=1), rtol=1e-5)

    logits = _numpy_encoder(c[ENCODER], x) @ c["head"]["kernel"] + c["head"]["bias"]
    log_softmax = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    got = classification_metrics(clf.apply)(pc, images, labels, None)
    np.testing.assert_allclose(got["loss"], -log_softmax[np.arange(5), labels], rtol=1e-5)
    np.testing.assert_array_equal(got["accuracy"], np.argmax(logits, 1) == labels)
    weights = np.array([1, 1, 1, 0, 0])  # a padded batch: its mean is over the real examples
    np.testing.assert_allclose(masked_mean(got["loss"], weights), np.mean(got["loss"][:3]), 1e-6)


def test_a_given_objective_is_recorded_by_name_and_a_built_one_as_not_given():
    def l1(params, images, labels, rng):
        return {"loss": jnp.abs(normalize(images)).mean(axis=-1)}

    built = reconstruction_metrics(lambda v, x: x, ObjectiveConfig())
    assert objectives.fingerprint(built, given=False) == {"given": False}
    recorded = objectives.fingerprint(l1, given=True)
    assert recorded == {"given": True, "name": f"{__name__}.{l1.__qualname__}"}
    assert recorded["name"].endswith(
        "test_a_given_objective_is_recorded_by_name_and_a_built_one_as_not_given.<locals>.l1"
    )
