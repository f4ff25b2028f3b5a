import jax
import jax.numpy as jnp
import numpy as np

from aejax.configs import ModelConfig
from aejax.models import make_autoencoder, make_classifier


def _init(model, features=784, key=0):
    return model.init(jax.random.key(key), jnp.zeros((1, features)))["params"]


def test_shapes_and_dtypes():
    ae, clf = make_autoencoder(ModelConfig(), 784), make_classifier(ModelConfig())
    x = jnp.zeros((5, 784))
    recon = ae.apply({"params": _init(ae)}, x)
    logits = clf.apply({"params": _init(clf)}, x)
    assert recon.shape == (5, 784) and recon.dtype == jnp.float32
    assert logits.shape == (5, 10) and logits.dtype == jnp.float32
    assert ae.apply({"params": _init(ae)}, x, method="encode").shape == (5, 64)


def test_reconstruction_is_bounded_by_tanh():
    ae = make_autoencoder(ModelConfig(), 784)
    recon = ae.apply({"params": _init(ae)}, 100.0 * jnp.ones((2, 784)))
    assert float(jnp.max(jnp.abs(recon))) <= 1.0


def test_encoder_subtree_has_the_same_structure_in_both_models():
    ae, clf = make_autoencoder(ModelConfig(), 784), make_classifier(ModelConfig())
    pa, pc = _init(ae), _init(clf)
    assert jax.tree.structure(pa["encoder"]) == jax.tree.structure(pc["encoder"])
    assert jax.tree.map(jnp.shape, pa["encoder"]) == jax.tree.map(jnp.shape, pc["encoder"])
    assert set(pc) == {"encoder", "head"} and set(pa) == {"encoder", "decoder"}


def test_torch_init_is_uniform_within_one_over_sqrt_fan_in():
    params = _init(make_autoencoder(ModelConfig(), 784))
    for layer, fan_in in [(params["encoder"]["hidden"], 784), (params["decoder"]["output"], 128)]:
        bound = 1 / np.sqrt(fan_in)
        for leaf in (layer["kernel"], layer["bias"]):
            assert float(jnp.max(jnp.abs(leaf))) <= bound
            assert float(jnp.max(jnp.abs(leaf))) > 0.9 * bound  # uniform fills the range
    # Uniform(-b, b) has std b/sqrt(3).
    kernel = params["encoder"]["hidden"]["kernel"]
    np.testing.assert_allclose(float(jnp.std(kernel)), 1 / np.sqrt(784) / np.sqrt(3), rtol=0.02)


def test_lecun_init_is_flax_default_with_zero_bias():
    params = _init(make_autoencoder(ModelConfig(init="lecun"), 784))
    assert float(jnp.max(jnp.abs(params["encoder"]["hidden"]["bias"]))) == 0.0
    kernel = params["encoder"]["hidden"]["kernel"]
    np.testing.assert_allclose(float(jnp.std(kernel)), 1 / np.sqrt(784), rtol=0.05)
