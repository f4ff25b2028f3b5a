"""PyTorch interop: state_dict conversion and numerical parity with the reference PyTorch models.

Adam details that had to match: the same defaults (b1=0.9, b2=0.999, eps=1e-8, no weight decay);
eps added *outside* the square root, ``lr * m_hat / (sqrt(v_hat) + eps)`` (optax's ``eps_root``
stays 0: it would put eps inside); both moments bias-corrected, the first step counted as t=1; and
the bias corrections computed precisely. optax.adam evaluates ``1 - 0.999**t`` in float32 (~1e-5
relative error; PyTorch uses doubles), and over 50 steps that alone grows to ~3e-4 relative loss
and ~5e-3 param differences, so the parity runs use `aejax.torch_adam`. The losses must reduce
alike too: ``nn.MSELoss`` averages every element, i.e. examples of aejax's per-example mean.
"""

import ast
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aejax import (
    CheckpointError,
    ModelConfig,
    TorchMissingError,
    UserError,
    from_torch_state_dict,
    make_autoencoder,
    make_classifier,
    normalize,
    to_torch_state_dict,
    torch_adam,
)
from aejax.config import ObjectiveConfig
from aejax.engine.train import create_state, make_epoch_fn
from aejax.errors import StateDictMismatchError
from aejax.model.interop import scale_by_torch_adam, to_torch_module
from aejax.model.objectives import classification_metrics
from aejax.model.objectives import reconstruction_metrics as objective_metrics

torch = pytest.importorskip("torch", reason="PyTorch parity needs pip install 'aejax[torch]'")
import torch_reference as ref  # noqa: E402 (needs torch)

from aejax.model import torch_models as shipped  # noqa: E402 (needs torch)


def reconstruction_metrics(apply_fn):
    """The reference objective: MSE on clean pixels in [-1, 1]."""
    return objective_metrics(apply_fn, ObjectiveConfig())


torch.set_num_threads(1)  # tiny batches; extra threads only contend with XLA's on 2 cores

STEPS, BATCH = 50, 100


def reference_models(seed=0):
    torch.manual_seed(seed)
    autoencoder = shipped.Autoencoder()
    return autoencoder, shipped.Classifier(autoencoder.encoder)


def max_abs_diff(params_a, params_b) -> float:
    diffs = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), params_a, params_b)
    return max(jax.tree.leaves(diffs))


@pytest.fixture(scope="module")
def images(small_fashion):
    # STEPS batches of real images; the 2000-image subset is gone through more than once.
    rows = np.arange(STEPS * BATCH) % len(small_fashion.train_labels)
    return small_fashion.train_images[rows], small_fashion.train_labels[rows]


@pytest.mark.parametrize("kind", ["autoencoder", "classifier"])
def test_same_weights_give_same_outputs(kind, images):
    autoencoder, classifier = reference_models()
    net = autoencoder if kind == "autoencoder" else classifier
    model = (
        make_autoencoder(ModelConfig(), 784)
        if kind == "autoencoder"
        else make_classifier(ModelConfig())
    )
    x = normalize(jnp.asarray(images[0][:BATCH]))
    params = from_torch_state_dict(net.state_dict(), kind)
    ours = model.apply({"params": params}, x)
    with torch.no_grad():
        theirs = net(torch.from_numpy(np.array(x))).numpy()
    assert ours.shape == theirs.shape == (BATCH, 784 if kind == "autoencoder" else 10)
    assert np.max(np.abs(np.asarray(ours) - theirs)) <= 1e-5


@pytest.mark.parametrize("kind", ["autoencoder", "classifier"])
def test_fifty_adam_steps_match_pytorch(kind, images):
    """Same initial weights and batches: aejax's epoch program and the PyTorch loop agree."""
    autoencoder, classifier = reference_models(seed=1)
    net = autoencoder if kind == "autoencoder" else classifier
    if kind == "autoencoder":
        model, metrics_fn = make_autoencoder(ModelConfig(), 784), reconstruction_metrics
        loss_fn, target = torch.nn.MSELoss(), "input"
    else:
        model, metrics_fn = make_classifier(ModelConfig()), classification_metrics
        loss_fn, target = torch.nn.CrossEntropyLoss(), "label"
    state = create_state(model, 784, torch_adam(1e-3), jax.random.key(0))
    state = state.replace(
        params=from_torch_state_dict(net.state_dict(), kind, expected=state.params)
    )
    state = state.replace(opt_state=state.tx.init(state.params))
    # An "epoch" of exactly one batch: its internal shuffle only reorders that batch, so the
    # library's compiled epoch program performs one Adam step on the batch we choose.
    epoch = jax.jit(make_epoch_fn(metrics_fn(model.apply), BATCH, BATCH), donate_argnums=0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    ours, theirs = [], []
    for step in range(STEPS):
        x_u8 = images[0][step * BATCH : (step + 1) * BATCH]
        y = images[1][step * BATCH : (step + 1) * BATCH]
        state, metrics = epoch(state, jnp.asarray(x_u8), jnp.asarray(y), jax.random.key(step))
        ours.append(float(metrics["loss"][0]))
        batch = [(ref.normalize(x_u8), torch.from_numpy(y).long())]
        theirs.append(ref.train_epoch(net, optimizer, loss_fn, batch, target))
    ours, theirs = np.array(ours), np.array(theirs)
    assert ours[-1] < 0.8 * ours[0]  # it learned, so the comparison is not of constants
    assert np.max(np.abs(ours - theirs) / np.abs(theirs)) <= 1e-4
    assert max_abs_diff(state.params, from_torch_state_dict(net.state_dict(), kind)) <= 1e-4


def test_torch_adam_matches_torch_optim_adam_where_optax_adam_drifts():
    """Identical gradients into three optimisers: only optax.adam's bias correction differs."""
    grads = np.random.default_rng(0).normal(size=(STEPS, 1000)).astype(np.float32)
    param = torch.zeros(1000, requires_grad=True)
    optimizer = torch.optim.Adam([param], lr=1e-3)
    ours = {"torch_adam": torch_adam(1e-3), "optax.adam": optax.adam(1e-3)}
    params = {name: jnp.zeros(1000) for name in ours}
    states = {name: tx.init(params[name]) for name, tx in ours.items()}
    worst = dict.fromkeys(ours, 0.0)
    for grad in grads:
        param.grad = torch.from_numpy(grad.copy())
        optimizer.step()
        for name, tx in ours.items():
            updates, states[name] = tx.update(jnp.asarray(grad), states[name])
            params[name] = optax.apply_updates(params[name], updates)
            gap = np.max(np.abs(np.asarray(params[name]) - param.detach().numpy()))
            worst[name] = max(worst[name], float(gap))
    assert worst["torch_adam"] <= 1e-8  # a few float32 ulps of values up to ~0.05
    assert worst["optax.adam"] > 10 * worst["torch_adam"]
    # Same state layout as optax.adam: TrainStates and checkpoints of either fit the other.
    plain = optax.adam(1e-3).init(params["torch_adam"])
    assert jax.tree.structure(states["torch_adam"]) == jax.tree.structure(plain)


@pytest.mark.parametrize("kind", ["autoencoder", "classifier"])
def test_round_trip_is_exact(kind):
    autoencoder, classifier = reference_models(seed=2)
    original = (autoencoder if kind == "autoencoder" else classifier).state_dict()
    back = to_torch_state_dict(from_torch_state_dict(original, kind), kind)
    assert list(back) == list(original)
    for key, tensor in original.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key


def test_params_map_to_the_reference_layout():
    autoencoder, _ = reference_models()
    params = from_torch_state_dict(autoencoder.state_dict(), "autoencoder")
    expected = make_autoencoder(ModelConfig(), 784).init(jax.random.key(0), jnp.zeros((1, 784)))
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, expected["params"])
    kernel = np.asarray(params["decoder"]["output"]["kernel"])
    np.testing.assert_array_equal(kernel, autoencoder.decoder[2].weight.detach().numpy().T)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile's own imports warn
def test_compiled_module_prefix_is_accepted():
    autoencoder, _ = reference_models()
    compiled = torch.compile(autoencoder)  # state_dict keys gain "_orig_mod."; nothing compiles
    assert next(iter(compiled.state_dict())).startswith("_orig_mod.")
    params = from_torch_state_dict(compiled.state_dict(), "autoencoder")
    plain = from_torch_state_dict(autoencoder.state_dict(), "autoencoder")
    assert max_abs_diff(params, plain) == 0.0


def test_missing_and_unexpected_keys_are_named():
    autoencoder, classifier = reference_models()
    state_dict = dict(autoencoder.state_dict())
    state_dict.pop("decoder.2.bias")
    state_dict["decoder.4.weight"] = torch.zeros(3)
    with pytest.raises(StateDictMismatchError, match=r"decoder\.2\.bias.*decoder\.4\.weight"):
        from_torch_state_dict(state_dict, "autoencoder")
    with pytest.raises(StateDictMismatchError, match="fc.weight"):
        from_torch_state_dict(autoencoder.state_dict(), "classifier")
    # Either alone is refused too: a key missing, or one too many.
    only_missing = dict(autoencoder.state_dict())
    only_missing.pop("decoder.2.bias")
    with pytest.raises(
        StateDictMismatchError, match=r"missing \['decoder\.2\.bias'\], unexpected nothing"
    ):
        from_torch_state_dict(only_missing, "autoencoder")
    one_too_many = {**autoencoder.state_dict(), "decoder.4.weight": torch.zeros(3)}
    with pytest.raises(
        StateDictMismatchError, match=r"missing nothing, unexpected \['decoder\.4\.weight'\]"
    ):
        from_torch_state_dict(one_too_many, "autoencoder")
    with pytest.raises(UserError, match="model must be one of"):
        from_torch_state_dict(classifier.state_dict(), "resnet")


def test_shape_mismatch_is_a_checkpoint_error_naming_the_layer():
    torch.manual_seed(0)
    narrow = shipped.Autoencoder(hidden=32)
    expected = make_autoencoder(ModelConfig(), 784).init(jax.random.key(0), jnp.zeros((1, 784)))
    with pytest.raises(CheckpointError, match=r"encoder/hidden/kernel is \(784, 32\)"):
        from_torch_state_dict(narrow.state_dict(), "autoencoder", expected=expected["params"])
    broken = dict(narrow.state_dict())
    broken["encoder.2.weight"] = torch.zeros(64, 50)  # takes 50 inputs after a 32-wide layer
    broken["encoder.2.bias"] = torch.zeros(64)
    # The message names both widths: what the layer takes and what the one before gives.
    with pytest.raises(
        StateDictMismatchError, match="takes 50 inputs but the layer before it gives 32;"
    ):
        from_torch_state_dict(broken, "autoencoder")


def test_to_torch_rejects_params_of_the_other_model():
    params = make_autoencoder(ModelConfig(), 784).init(jax.random.key(0), jnp.zeros((1, 784)))
    with pytest.raises(StateDictMismatchError, match="head/kernel missing"):
        to_torch_state_dict(params["params"], "classifier")


def test_numpy_state_dicts_need_no_torch_but_export_does(monkeypatch):
    autoencoder, _ = reference_models()
    arrays = {k: v.numpy() for k, v in autoencoder.state_dict().items()}
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    params = from_torch_state_dict(arrays, "autoencoder")
    np.testing.assert_array_equal(params["encoder"]["latent"]["bias"], arrays["encoder.2.bias"])
    with pytest.raises(TorchMissingError, match=r"pip install 'aejax\[torch\]'"):
        to_torch_state_dict(params, "autoencoder")


def test_a_conv_model_is_refused_for_export_in_one_line():
    conv = make_autoencoder(ModelConfig(hidden=32, latent=16, arch="conv"), 784)
    params = conv.init(jax.random.key(0), jnp.zeros((1, 784)))["params"]
    with pytest.raises(UserError, match="conv models have no PyTorch reference to export to"):
        to_torch_state_dict(params)


@pytest.mark.parametrize("kind", ["autoencoder", "classifier"])
def test_an_exported_module_computes_what_the_aejax_model_computes(kind):
    config = ModelConfig(hidden=32, latent=8, num_classes=5)
    model = make_autoencoder(config, 784) if kind == "autoencoder" else make_classifier(config)
    params = model.init(jax.random.key(3), jnp.zeros((1, 784)))["params"]
    module = to_torch_module(params, kind)
    assert not module.training and type(module).__name__ == kind.capitalize()
    x = jax.random.uniform(jax.random.key(4), (6, 784), minval=-1.0, maxval=1.0)
    with torch.no_grad():
        exported = module(torch.from_numpy(np.array(x))).numpy()
    np.testing.assert_allclose(exported, model.apply({"params": params}, x), atol=1e-5)


def test_the_shipped_reference_modules_import_nothing_but_torch():
    # The benchmarks' PyTorch processes load the file on its own, to stay free of JAX.
    tree = ast.parse(Path(shipped.__file__).read_text())
    body = tree.body
    imported = {alias.name for node in body if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in body if isinstance(node, ast.ImportFrom)}
    assert imported == {"__future__", "torch"}


def test_the_torch_matching_adam_defaults_are_torch_optim_adams():
    """Called without hyperparameters, both forms of the torch-matching Adam are PyTorch's."""
    import inspect

    defaults = torch.optim.Adam([torch.zeros(1, requires_grad=True)]).defaults
    for fn in (torch_adam, scale_by_torch_adam):
        given = inspect.signature(fn).parameters
        found = (given["b1"].default, given["b2"].default, given["eps"].default)
        assert found == (*defaults["betas"], defaults["eps"]), fn.__name__
    params = {"w": jnp.linspace(-1.0, 1.0, 5)}
    grads = {"w": jnp.linspace(0.5, -0.3, 5)}
    plain = optax.chain(scale_by_torch_adam(), optax.scale_by_learning_rate(1e-3))
    updates = [tx.update(grads, tx.init(params))[0] for tx in (plain, torch_adam(1e-3))]
    np.testing.assert_array_equal(updates[0]["w"], updates[1]["w"])


def test_importing_aejax_leaves_torch_unimported():
    # PyTorch is optional and slow to import: only exporting to it loads it.
    import subprocess

    code = "import aejax, aejax.model.interop, sys; print('torch' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"


def test_wrappers_nested_in_any_order_are_all_stripped():
    autoencoder, _ = reference_models()
    plain = from_torch_state_dict(autoencoder.state_dict(), "autoencoder")
    # torch.compile over DataParallel, and DataParallel over torch.compile, twice over.
    for prefix in ("module._orig_mod.", "_orig_mod.module.", "module.module._orig_mod."):
        wrapped = {prefix + key: value for key, value in autoencoder.state_dict().items()}
        assert max_abs_diff(from_torch_state_dict(wrapped, "autoencoder"), plain) == 0.0, prefix


def test_a_weight_that_is_not_a_linear_layers_is_refused_naming_it():
    autoencoder, _ = reference_models()
    conv_like = dict(autoencoder.state_dict())
    conv_like["encoder.0.weight"] = torch.zeros(128, 784, 1)  # its bias (128,) still fits
    wrong_bias = dict(autoencoder.state_dict())
    wrong_bias["encoder.0.bias"] = torch.zeros(129)  # a 2-D weight, but the bias does not fit
    for state_dict in (conv_like, wrong_bias):
        with pytest.raises(StateDictMismatchError, match=r"encoder\.0\.weight .* nn\.Linear's"):
            from_torch_state_dict(state_dict, "autoencoder")


def test_params_whose_bias_does_not_fit_the_kernel_are_refused_for_export():
    params = make_autoencoder(ModelConfig(), 784).init(jax.random.key(0), jnp.zeros((1, 784)))
    params = jax.tree.map(np.asarray, params["params"])
    params["encoder"]["hidden"]["bias"] = np.zeros(127, np.float32)  # the kernel is (784, 128)
    with pytest.raises(StateDictMismatchError, match="encoder/hidden has kernel .* dense layer"):
        to_torch_state_dict(params, "autoencoder")
