import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.config import ModelConfig
from aejax.errors import EncoderMismatchError
from aejax.model.models import make_autoencoder, make_classifier
from aejax.model.transplant import transplant_encoder


def _params(model, key):
    return model.init(jax.random.key(key), jnp.zeros((1, 784)))["params"]


def _equal(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


def test_encoder_is_copied_and_head_keeps_its_fresh_init():
    ae_params = _params(make_autoencoder(ModelConfig(), 784), key=1)
    fresh = _params(make_classifier(ModelConfig()), key=2)
    result = transplant_encoder(fresh, ae_params["encoder"])
    assert _equal(result["encoder"], ae_params["encoder"])
    assert _equal(result["head"], fresh["head"])
    assert not _equal(fresh["encoder"], ae_params["encoder"])  # it really changed something


def test_transplanted_classifier_computes_with_the_pretrained_features():
    ae, clf = make_autoencoder(ModelConfig(), 784), make_classifier(ModelConfig())
    ae_params = _params(ae, key=1)
    params = transplant_encoder(_params(clf, key=2), ae_params["encoder"])
    x = jax.random.normal(jax.random.key(3), (4, 784))
    latent = ae.apply({"params": ae_params}, x, method="encode")
    head = params["head"]
    np.testing.assert_allclose(
        clf.apply({"params": params}, x), latent @ head["kernel"] + head["bias"], rtol=1e-5
    )


def test_mismatch_names_every_path_and_shape():
    ae_params = _params(make_autoencoder(ModelConfig(hidden=100, latent=32), 784), key=1)
    fresh = _params(make_classifier(ModelConfig()), key=2)
    with pytest.raises(EncoderMismatchError) as info:
        transplant_encoder(fresh, ae_params["encoder"])
    message = str(info.value)
    assert "encoder/hidden/kernel: pretrained (784, 100) vs classifier (784, 128)" in message
    assert "encoder/latent/bias: pretrained (32,) vs classifier (64,)" in message


def test_missing_layer_is_named():
    fresh = _params(make_classifier(ModelConfig()), key=2)
    partial = {"hidden": fresh["encoder"]["hidden"]}
    with pytest.raises(EncoderMismatchError, match="encoder/latent/kernel: missing"):
        transplant_encoder(fresh, partial)
