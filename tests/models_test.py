import json
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aejax.config import ModelConfig
from aejax.engine.train import create_state, make_epoch_fn
from aejax.errors import UserError
from aejax.model.layers import StridedConv
from aejax.model.models import (
    ENCODER,
    Autoencoder,
    Classifier,
    ConvDecoder,
    ConvEncoder,
    Decoder,
    Encoder,
    make_autoencoder,
    make_classifier,
    warn_if_slow_dtype,
)
from aejax.model.objectives import classification_metrics
from support import SUBSET_DIR, run_script_here, subset_data_config


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
    assert set(pc) == {ENCODER, "head"} and set(pa) == {ENCODER, "decoder"}


def test_torch_init_is_uniform_within_one_over_sqrt_fan_in():
    params = _init(make_autoencoder(ModelConfig(), 784))
    layers = [
        (params["encoder"]["hidden"], 784),
        (params["decoder"]["hidden"], 64),
        (params["decoder"]["output"], 128),
    ]
    for layer, fan_in in layers:
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


def _dtypes(tree):
    return {leaf.dtype for leaf in jax.tree.leaves(tree)}


def test_bfloat16_computes_in_bfloat16_while_params_stay_float32():
    config = ModelConfig(dtype="bfloat16")
    ae, clf = make_autoencoder(config, 784), make_classifier(config)
    x = jax.random.uniform(jax.random.key(1), (5, 784), minval=-1, maxval=1)
    ae_params, clf_params = _init(ae), _init(clf)
    assert _dtypes(ae_params) == _dtypes(clf_params) == {jnp.dtype(jnp.float32)}

    @jax.jit
    def outputs(ae_params, clf_params):
        reconstruction = ae.apply({"params": ae_params}, x)
        latent = ae.apply({"params": ae_params}, x, method="encode")
        logits, activations = clf.apply({"params": clf_params}, x, capture_intermediates=True)
        return reconstruction, latent, logits, activations["intermediates"]

    reconstruction, latent, logits, activations = outputs(ae_params, clf_params)
    assert latent.dtype == jnp.bfloat16
    # The models' outputs come back in float32, so losses are computed in float32.
    assert reconstruction.dtype == logits.dtype == jnp.float32
    inner = {name: tree for name, tree in activations.items() if name != "__call__"}
    assert _dtypes(inner) == {jnp.dtype(jnp.bfloat16)}
    # The same params in float32 give the same logits up to bfloat16 rounding.
    float32 = make_classifier(ModelConfig())
    reference = jax.jit(float32.apply)({"params": clf_params}, x)
    assert reference.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(logits, np.float32), reference, atol=0.05)


def test_float32_is_the_default_everywhere():
    assert ModelConfig().dtype == "float32"
    clf = make_classifier(ModelConfig())
    params = _init(clf)
    apply = jax.jit(lambda p, x: clf.apply({"params": p}, x, capture_intermediates=True))
    _, activations = apply(params, jnp.ones((2, 784)))
    assert _dtypes(params) == _dtypes(activations["intermediates"]) == {jnp.dtype(jnp.float32)}


def test_bfloat16_training_multiplies_in_bfloat16_and_keeps_float32_params(small_fashion):
    config = ModelConfig(hidden=32, latent=16, dtype="bfloat16")
    model = make_classifier(config)
    metrics_fn = classification_metrics(model.apply)
    state = create_state(model, 784, optax.adam(1e-3), jax.random.key(0))
    images, labels = small_fashion.train_images[:500], small_fashion.train_labels[:500]
    epoch = jax.jit(make_epoch_fn(metrics_fn, 500, 100))
    lowered = epoch.lower(state, images, labels, jax.random.key(1)).as_text()
    matmuls = [line for line in lowered.splitlines() if "dot_general" in line]
    # Forward and backward alike: 3 layers -> 3 forward, 3 weight-gradient, 2 input-gradient.
    assert len(matmuls) == 8 and all("bf16" in line for line in matmuls)
    state, metrics = epoch(state, images, labels, jax.random.key(1))
    assert _dtypes(state.params) == _dtypes(state.opt_state) - {jnp.dtype(jnp.int32)}
    assert _dtypes(state.params) == {jnp.dtype(jnp.float32)}
    losses = np.asarray(metrics["loss"])
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_bfloat16_on_cpu_warns_in_one_line_and_still_trains(tmp_path):
    data = subset_data_config()
    done = run_script_here(
        "pretrain",
        *("--workdir", str(tmp_path), "--dataset", data.dataset, "--source", "idx"),
        *("--data-dir", data.data_dir, "--train-limit", "500", "--test-limit", "100"),
        *("--epochs", "2", "--hidden", "32", "--latent", "16", "--dtype", "bfloat16"),
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    rows = [
        json.loads(line) for line in (tmp_path / "pretrain/metrics.jsonl").read_text().splitlines()
    ]
    losses = [row["test_loss"] for row in rows]
    assert len(losses) == 2 and 0 < losses[1] < losses[0] < 1  # it learns, in bfloat16
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: bfloat16 runs slower than float32 on CPU (XLA converts its matmuls to "
        "float32 here); it pays on GPUs and TPUs"
    ]


def test_the_conv_architecture_shares_its_encoder_subtree_and_keeps_the_contract():
    config = ModelConfig(hidden=32, latent=16, arch="conv")
    autoencoder, classifier = make_autoencoder(config, 784), make_classifier(config)
    ae = autoencoder.init(jax.random.key(0), jnp.zeros((1, 784)))["params"]
    clf = classifier.init(jax.random.key(1), jnp.zeros((1, 784)))["params"]
    shapes = jax.tree.map(np.shape, ae[ENCODER])
    assert shapes == jax.tree.map(np.shape, clf[ENCODER])
    assert shapes["conv0"]["kernel"] == (3, 3, 1, 4) and shapes["conv1"]["kernel"] == (3, 3, 4, 8)
    x = jax.random.uniform(jax.random.key(2), (5, 784), minval=-1.0, maxval=1.0)
    reconstruction = autoencoder.apply({"params": ae}, x)
    assert reconstruction.shape == (5, 784) and float(jnp.max(jnp.abs(reconstruction))) <= 1.0
    assert classifier.apply({"params": clf}, x).shape == (5, 10)
    codes = autoencoder.apply({"params": ae}, x, method=autoencoder.encode)
    assert codes.shape == (5, 16)


@pytest.mark.parametrize("up", [False, True])
def test_the_strided_conv_is_flaxs_convolution_computed_as_one_matmul(up):
    flax_layer = (nn.ConvTranspose if up else nn.Conv)(5, (3, 3), strides=(2, 2), padding="SAME")
    layer = StridedConv(5, up=up)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    params = layer.init(jax.random.key(1), x)
    assert jax.tree.map(np.shape, params) == jax.tree.map(
        np.shape, flax_layer.init(jax.random.key(1), x)
    )
    np.testing.assert_allclose(layer.apply(params, x), flax_layer.apply(params, x), atol=1e-5)
    assert layer.apply(params, x).shape == ((2, 16, 16, 5) if up else (2, 4, 4, 5))

    def grads(module):
        return jax.grad(lambda p: jnp.sum(jnp.sin(module.apply(p, x))))(params)

    jax.tree.map(
        lambda ours, flax: np.testing.assert_allclose(ours, flax, atol=1e-4),
        grads(layer),
        grads(flax_layer),
    )


def test_the_conv_architecture_refuses_what_it_cannot_take():
    conv = ModelConfig(hidden=32, latent=16, arch="conv")
    with pytest.raises(UserError, match="square images whose side is a multiple of 4, not 700"):
        make_classifier(conv).init(jax.random.key(0), jnp.zeros((1, 700)))
    with pytest.raises(UserError, match="the vae loss needs the mlp architecture") as info:
        make_autoencoder(conv, 784, logits=True, variational=True)
    assert info.value.settings == ("arch", "loss")
    with pytest.raises(UserError, match="arch must be one of mlp, conv, got 'resnet'"):
        ModelConfig(arch="resnet")


def test_a_conv_pipeline_trains_from_the_command_line_and_evaluates(tmp_path):
    flags = ["--dataset", "fashion_mnist", "--source", "idx", "--data-dir", str(SUBSET_DIR)]
    flags += ["--arch", "conv", "--hidden", "16", "--latent", "8", "--train-limit", "400"]
    flags += ["--test-limit", "100", "--epochs", "1", "--no-progress", "--no-compile-cache"]
    done = run_script_here("pipeline", *flags, "--workdir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["finetune"]["num_train"] == 400
    config = json.loads((tmp_path / "finetune" / "config.json").read_text())
    assert config["model"]["arch"] == "conv"
    evaluated = run_script_here("evaluate", str(tmp_path / "finetune"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["accuracy"] == record["finetune"]["test_accuracy"]


def test_the_modules_built_directly_are_the_tutorials_by_default():
    x = jnp.zeros((2, 784))
    autoencoder, classifier = Autoencoder(), Classifier()
    reconstruction = autoencoder.apply({"params": _init(autoencoder)}, x)
    code = autoencoder.apply({"params": _init(autoencoder)}, x, method="encode")
    assert reconstruction.shape == (2, 784) and code.shape == (2, 64)
    far = autoencoder.apply({"params": _init(autoencoder)}, 100.0 * jnp.ones((2, 784)))
    assert float(jnp.max(jnp.abs(far))) <= 1.0  # pixels in [-1, 1]: tanh, not logits
    assert classifier.apply({"params": _init(classifier)}, x).shape == (2, 10)
    decoder, encoder = Decoder(), Encoder()
    assert decoder.apply({"params": _init(decoder, features=64)}, code).shape == (2, 784)
    assert encoder.apply({"params": _init(encoder)}, x).shape == (2, 64)
    assert set(_init(autoencoder)) == {ENCODER, "decoder"}  # no variance head: not a VAE
    tutorial = {"hidden": (784, 128), "latent": (128, 64)}  # the encoder's kernels
    for model in (autoencoder, classifier):
        kernels = {k: v["kernel"].shape for k, v in _init(model)[ENCODER].items()}
        assert kernels == tutorial, type(model).__name__
    assert {k: v["kernel"].shape for k, v in _init(encoder).items()} == tutorial
    assert _init(decoder, features=64)["hidden"]["kernel"].shape == (64, 128)
    conv_encoder, conv_decoder = ConvEncoder(), ConvDecoder()
    conv_params = _init(conv_encoder)
    assert conv_encoder.apply({"params": conv_params}, x).shape == (2, 64)
    assert conv_params["conv1"]["kernel"].shape == (3, 3, 128 // 8, 128 // 4)
    conv_decoded = conv_decoder.apply({"params": _init(conv_decoder, features=64)}, code)
    assert conv_decoded.shape == (2, 784)


def test_torch_init_of_each_conv_is_uniform_within_one_over_sqrt_nine_input_channels():
    config = ModelConfig(hidden=128, latent=16, arch="conv")
    params = _init(make_autoencoder(config, 784))
    layers = {  # kernel, and its fan-in: 3 x 3 x the input channels (a dense layer: its inputs)
        "decoder expand": (params["decoder"]["expand"]["kernel"], 16),
        "encoder latent": (params[ENCODER]["latent"]["kernel"], 7 * 7 * 32),
        "encoder conv0": (params[ENCODER]["conv0"]["kernel"], 9 * 1),
        "encoder conv1": (params[ENCODER]["conv1"]["kernel"], 9 * 16),
        "decoder up": (params["decoder"]["up"]["kernel"], 9 * 32),
        "decoder output": (params["decoder"]["output"]["kernel"], 9 * 16),
    }
    for name, (kernel, fan_in) in layers.items():
        bound, largest = 1 / np.sqrt(fan_in), float(jnp.max(jnp.abs(kernel)))
        assert 0.96 * bound < largest <= bound, name  # uniform fills (-b, b)


def test_calling_a_vae_decodes_its_posterior_mean():
    vae = make_autoencoder(ModelConfig(hidden=32, latent=8), 784, variational=True)
    params = _init(vae)
    x = jax.random.uniform(jax.random.key(3), (4, 784), minval=-1.0, maxval=1.0)
    mean, log_variance = vae.apply({"params": params}, x, method="posterior")
    assert not np.allclose(mean, log_variance)
    decoded = vae.apply({"params": params}, mean, method="decode")
    np.testing.assert_allclose(vae.apply({"params": params}, x), decoded, rtol=1e-6)


@pytest.mark.parametrize("decoder", [Decoder, ConvDecoder])
def test_a_logits_decoder_leaves_out_only_the_final_tanh(decoder):
    bounded, logits = decoder(hidden=8, output=64), decoder(hidden=8, output=64, logits=True)
    params = _init(bounded, features=4)
    z = jax.random.normal(jax.random.key(4), (3, 4))
    raw = jax.jit(logits.apply)({"params": params}, z)
    assert not np.allclose(raw, jnp.tanh(raw))
    reconstruction = jax.jit(bounded.apply)({"params": params}, z)
    np.testing.assert_allclose(reconstruction, jnp.tanh(raw), rtol=1e-6)


def test_only_bfloat16_on_a_cpu_is_warned_about():
    warn_if_slow_dtype.cache_clear()  # it warns once per process
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_slow_dtype("float32")
    with pytest.warns(UserWarning, match="bfloat16 runs slower than float32 on CPU"):
        warn_if_slow_dtype("bfloat16")
    warn_if_slow_dtype.cache_clear()
