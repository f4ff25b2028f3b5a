"""Pure per-example loss functions; reductions (and masking of padded examples) happen in train."""

import jax.numpy as jnp
import optax


def mse_per_example(reconstruction, target):
    """Mean squared error over features, one value per example (`MSELoss` for a full batch)."""
    return jnp.mean(jnp.square(reconstruction - target), axis=-1)


def cross_entropy_per_example(logits, labels):
    """Softmax cross-entropy with integer labels, one value per example."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def correct_per_example(logits, labels):
    """1.0 where the arg-max class equals the label, else 0.0."""
    return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


def masked_mean(values, mask):
    """Mean of `values` over the entries where `mask` is 1 (padding contributes nothing)."""
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def bce_per_example(logits, target):
    """Binary cross-entropy of sigmoid(`logits`) against `target` in [0, 1], mean over features.

    Computed from logits (``optax.sigmoid_binary_cross_entropy``), so saturated outputs give
    finite losses and gradients.
    """
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, target), axis=-1)
