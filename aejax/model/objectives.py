"""What each stage optimises and reports: per-example losses and the two task metrics functions.

Each task is a *metrics function* (`aejax.contracts.MetricsFn`), which is all the task-agnostic
training loop knows of it. Pretraining reconstructs (MSE or BCE, optionally from corrupted
inputs: denoising) or maximises a VAE's evidence lower bound; fine-tuning classifies.

Inputs always reach the encoder normalised to [-1, 1], exactly as the classifier will see them, so
the transplanted encoder meets the input distribution it was trained on. Only the target and the
decoder's output differ: MSE compares tanh outputs with [-1, 1] pixels; BCE compares sigmoid
outputs (taken from logits) with pixels in [0, 1]. Noise touches inputs only; targets stay clean.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from aejax.config import ObjectiveConfig, parse_noise
from aejax.contracts import MetricsFn
from aejax.data.datasets import normalize

BLACK = -1.0  # a masked pixel becomes background (0 in [0, 255]), not mid-grey


def mse_per_example(reconstruction, target):
    """Mean squared error over features, one value per example (`MSELoss` for a full batch)."""
    return jnp.mean(jnp.square(reconstruction - target), axis=-1)


def bce_per_example(logits, target):
    """Binary cross-entropy of sigmoid(`logits`) against `target` in [0, 1], mean over features.

    Computed from logits (``optax.sigmoid_binary_cross_entropy``), so saturated outputs give
    finite losses and gradients.
    """
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, target), axis=-1)


def cross_entropy_per_example(logits, labels):
    """Softmax cross-entropy with integer labels, one value per example."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def correct_per_example(logits, labels):
    """1.0 where the arg-max class equals the label, else 0.0."""
    return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


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


def corrupt(inputs, rng, noise: str):
    """`inputs` in [-1, 1] with `noise` applied (``none``, ``gaussian:SIGMA``, ``mask:P``)."""
    kind, amount = parse_noise(noise)
    if kind == "none" or rng is None:  # evaluation passes no rng: it scores clean inputs
        return inputs
    if kind == "gaussian":
        return inputs + amount * jax.random.normal(rng, inputs.shape, inputs.dtype)
    keep = jax.random.bernoulli(rng, 1.0 - amount, inputs.shape)
    return jnp.where(keep, inputs, BLACK)


def reconstruction_metrics(apply_fn, objective: ObjectiveConfig) -> MetricsFn:
    """Per-example reconstruction loss of clean images from (possibly corrupted) inputs."""

    def metrics(params, images, labels, rng):
        del labels
        clean = normalize(images)
        outputs = apply_fn({"params": params}, corrupt(clean, rng, objective.noise))
        if objective.loss == "bce":
            return {"loss": bce_per_example(outputs, (clean + 1.0) / 2.0)}
        return {"loss": mse_per_example(outputs, clean)}

    return metrics


def kl_per_example(mean, log_variance):
    """KL( N(mean, exp(log_variance)) || N(0, I) ), summed over the code's dimensions."""
    return 0.5 * jnp.sum(jnp.exp(log_variance) + jnp.square(mean) - 1.0 - log_variance, axis=-1)


def sample_code(mean, log_variance, rng):
    """The reparameterised sample ``mean + exp(log_variance / 2) * eps``; the mean without rng."""
    if rng is None:  # evaluation scores the mean code: deterministic, as the classifier sees it
        return mean
    eps = jax.random.normal(rng, mean.shape, mean.dtype)
    return mean + jnp.exp(0.5 * log_variance) * eps


def vae_metrics(model, objective: ObjectiveConfig) -> MetricsFn:
    """Per-example negative ELBO per pixel: BCE of the decoded sample + beta * KL / pixels.

    A Bernoulli decoder (BCE on pixels in [0, 1]), as in the original VAE on MNIST; dividing the
    KL by the number of pixels puts it on the scale of the per-pixel reconstruction loss, so
    beta = 1 is the ELBO itself. "reconstruction" and "kl" are reported beside "loss".
    """

    def metrics(params, images, labels, rng):
        del labels
        clean = normalize(images)
        noise_rng, sample_rng = (None, None) if rng is None else jax.random.split(rng)
        inputs = corrupt(clean, noise_rng, objective.noise)
        variables = {"params": params}
        mean, log_variance = model.apply(variables, inputs, method=model.posterior)
        code = sample_code(mean, log_variance, sample_rng)
        logits = model.apply(variables, code, method=model.decode)
        reconstruction = bce_per_example(logits, (clean + 1.0) / 2.0)
        kl = kl_per_example(mean, log_variance)
        loss = reconstruction + objective.beta * kl / clean.shape[-1]
        return {"loss": loss, "reconstruction": reconstruction, "kl": kl}

    return metrics


def pretraining_metrics(model, objective: ObjectiveConfig) -> MetricsFn:
    """The metrics function of `objective` for the autoencoder `model` (a VAE for ``vae``)."""
    if objective.loss == "vae":
        return vae_metrics(model, objective)
    return reconstruction_metrics(model.apply, objective)


def uses_logits(objective: ObjectiveConfig) -> bool:
    """Whether the decoder must output logits (BCE, VAE) instead of tanh pixels (MSE)."""
    return objective.loss in ("bce", "vae")


def is_variational(objective: ObjectiveConfig) -> bool:
    """Whether `objective` trains a VAE (`aejax.model.models.Autoencoder` with ``variational``)."""
    return objective.loss == "vae"


def reconstruct(apply_fn, params, inputs, objective: ObjectiveConfig):
    """Reconstructions of `inputs` in [-1, 1], whatever the objective's output layer."""
    outputs = apply_fn({"params": params}, inputs)
    return 2.0 * jax.nn.sigmoid(outputs) - 1.0 if uses_logits(objective) else outputs


def fingerprint(metrics_fn: MetricsFn, given: bool) -> dict[str, Any]:
    """Whether the objective was given rather than built from the config (which config.json
    already holds), and the given one's name."""
    if not given:
        return {"given": False}
    name = getattr(metrics_fn, "__qualname__", type(metrics_fn).__qualname__)
    return {"given": True, "name": f"{getattr(metrics_fn, '__module__', '')}.{name}"}
