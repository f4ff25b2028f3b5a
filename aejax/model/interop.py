"""PyTorch ``state_dict`` <-> aejax params for the reference models (torch itself is optional).

The reference PyTorch models (`aejax.model.torch_models`, as the tutorial defines them) name their
layers by position in ``nn.Sequential`` blocks; aejax names them by role:

==========================  ==============================
PyTorch key                 aejax params path
==========================  ==============================
``encoder.0.{weight,bias}``  ``encoder/hidden/{kernel,bias}``
``encoder.2.{weight,bias}``  ``encoder/latent/{kernel,bias}``
``decoder.0.{weight,bias}``  ``decoder/hidden/{kernel,bias}``  (autoencoder)
``decoder.2.{weight,bias}``  ``decoder/output/{kernel,bias}``  (autoencoder)
``fc.{weight,bias}``         ``head/{kernel,bias}``            (classifier)
==========================  ==============================

``nn.Linear`` stores its weight as ``(out, in)`` and Flax's ``Dense`` its kernel as ``(in, out)``,
so kernels are transposed both ways; biases are copied. The prefixes that ``torch.compile``
(``_orig_mod.``) and ``DataParallel`` (``module.``) put before every key are accepted.

`torch_adam` is Adam computed the way ``torch.optim.Adam`` computes it. ``optax.adam`` has the same
formula (bias-corrected moments, eps added *outside* the square root) but evaluates the bias
correction ``1 - 0.999**t`` in float32, where it loses ~1e-5 of relative precision; PyTorch uses
Python doubles. That difference alone lets two otherwise identical float32 runs drift apart by
~3e-4 (relative loss) and ~5e-3 (params) within 50 steps; with `torch_adam` they stay ~1e-6 apart.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.errors import StateDictMismatchError, TorchMissingError, UserError
from aejax.model import trees

if TYPE_CHECKING:  # torch is optional: imported where it is used
    import torch

# aejax (module, layer) -> PyTorch module prefix, in the order PyTorch lists them.
LAYERS = {
    "autoencoder": {
        ("encoder", "hidden"): "encoder.0",
        ("encoder", "latent"): "encoder.2",
        ("decoder", "hidden"): "decoder.0",
        ("decoder", "output"): "decoder.2",
    },
    "classifier": {
        ("encoder", "hidden"): "encoder.0",
        ("encoder", "latent"): "encoder.2",
        ("head",): "fc",
    },
}
# Each layer's input is the previous layer's output; these are the layers that chain.
CHAINS = {
    "autoencoder": [
        ("encoder", "hidden"),
        ("encoder", "latent"),
        ("decoder", "hidden"),
        ("decoder", "output"),
    ],
    "classifier": [("encoder", "hidden"), ("encoder", "latent"), ("head",)],
}
WRAPPER_PREFIXES = ("_orig_mod.", "module.")


def from_torch_state_dict(
    state_dict: Mapping[str, Any], model: str = "autoencoder", expected: Any = None
) -> dict[str, Any]:
    """aejax params (``{"encoder": ..., ...}``) from a PyTorch reference model's state_dict."""
    layers = _layers(model)
    arrays = {_strip_wrappers(k): _to_numpy(v) for k, v in state_dict.items()}
    wanted = {f"{p}.{n}" for p in layers.values() for n in ("weight", "bias")}
    missing, unexpected = sorted(wanted - arrays.keys()), sorted(arrays.keys() - wanted)
    if missing or unexpected:
        raise StateDictMismatchError(
            f"state_dict does not fit the {model}: missing {missing or 'nothing'}, "
            f"unexpected {unexpected or 'nothing'}; pass the {model}'s own state_dict"
        )
    params: dict[str, Any] = {}
    for path, prefix in layers.items():
        weight, bias = arrays[f"{prefix}.weight"], arrays[f"{prefix}.bias"]
        if weight.ndim != 2 or bias.shape != weight.shape[:1]:
            raise StateDictMismatchError(
                f"{prefix}.weight {weight.shape} and {prefix}.bias {bias.shape} are not an "
                "nn.Linear's (out, in) weight and (out,) bias; check the state_dict's source"
            )
        layer = {"kernel": jnp.asarray(weight.T), "bias": jnp.asarray(bias)}
        _nested_set(params, path, layer)
    _check_chain(params, model)
    if expected is not None:
        check_same_shapes(expected, params, what=f"state_dict of the {model}")
    return params


def to_torch_state_dict(params: Mapping[str, Any], model: str = "autoencoder") -> OrderedDict:
    """A PyTorch state_dict (CPU tensors, PyTorch's key order) from aejax params."""
    try:
        import torch
    except ImportError:
        raise TorchMissingError(
            "to_torch_state_dict needs PyTorch; install it with pip install 'aejax[torch]'"
        ) from None
    layers = _layers(model)
    if "conv0" in params.get("encoder", {}):
        raise UserError(
            "conv models have no PyTorch reference to export to: the reference modules are "
            "fully connected (arch mlp)",
            settings=("arch",),
        )
    check_same_shapes(_layer_names(model), params, what=f"{model} params", shapes=False)
    _check_chain(params, model)
    state_dict: OrderedDict = OrderedDict()
    for path, prefix in layers.items():
        layer = _nested_get(params, path)
        kernel, bias = np.asarray(layer["kernel"]), np.asarray(layer["bias"])
        state_dict[f"{prefix}.weight"] = torch.from_numpy(np.array(kernel.T, order="C"))
        state_dict[f"{prefix}.bias"] = torch.from_numpy(np.array(bias))
    return state_dict


def to_torch_module(params: Mapping[str, Any], model: str = "autoencoder") -> torch.nn.Module:
    """The reference PyTorch `model` ("autoencoder" or "classifier", `aejax.model.torch_models`)
    holding aejax MLP `params`, its widths read from them, in eval mode."""
    state = to_torch_state_dict(params, model)
    from aejax.model import torch_models  # after the state dict: that says when torch is missing

    input_dim, hidden = state["encoder.0.weight"].shape[::-1]
    autoencoder = torch_models.Autoencoder(input_dim, hidden, state["encoder.2.weight"].shape[0])
    module = autoencoder
    if model == "classifier":
        num_classes, latent = state["fc.weight"].shape
        module = torch_models.Classifier(autoencoder.encoder, latent, num_classes)
    module.load_state_dict(state)
    return module.eval()


def torch_adam(
    learning_rate: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """Adam computed as ``torch.optim.Adam`` does; its state is structured like optax.adam's."""
    return optax.chain(
        scale_by_torch_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate)
    )


def scale_by_torch_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """``m_hat / (sqrt(v_hat) + eps)`` with bias corrections accurate to float32 rounding."""
    # -expm1(t * log(b)) == 1 - b**t without the cancellation that float32 `b**t` suffers.
    log_b1, log_b2 = math.log(b1), math.log(b2)

    def init(params):
        # Two separate trees: a donated optimizer state must not hold one buffer twice.
        mu, nu = (jax.tree.map(jnp.zeros_like, params) for _ in range(2))
        return optax.ScaleByAdamState(jnp.zeros([], jnp.int32), mu, nu)

    def update(grads, state, params=None):
        del params
        count = state.count + 1
        t = count.astype(jnp.float32)
        # The same float32 operations, in the same order, as PyTorch's single-tensor Adam.
        mu = jax.tree.map(lambda m, g: m + (g - m) * (1 - b1), state.mu, grads)
        nu = jax.tree.map(lambda v, g: v * b2 + g * g * (1 - b2), state.nu, grads)
        step_size = 1.0 / -jnp.expm1(t * log_b1)
        root_correction = jnp.sqrt(-jnp.expm1(t * log_b2))
        updates = jax.tree.map(
            lambda m, v: step_size * m / (jnp.sqrt(v) / root_correction + eps), mu, nu
        )
        return updates, optax.ScaleByAdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def check_same_shapes(expected: Any, actual: Any, what: str, shapes: bool = True) -> None:
    """Raise StateDictMismatchError naming each path (and shape) where `actual` differs."""
    words = {
        "missing": lambda d: f"{d.path} missing",
        "unexpected": lambda d: f"{d.path} unexpected",
        "shape": lambda d: f"{d.path} is {d.actual}, expected {d.expected}",
    }
    problems = [words[d.kind](d) for d in trees.differences(expected, actual, shapes)]
    if problems:
        raise StateDictMismatchError(
            f"{what} does not fit the model ({'; '.join(problems)}); "
            "use the same layer widths on both sides"
        )


def _layers(model: str) -> dict[tuple[str, ...], str]:
    if model not in LAYERS:
        raise UserError(f"model must be one of {', '.join(LAYERS)}, got {model!r}")
    return LAYERS[model]


def _layer_names(model: str) -> dict[str, Any]:
    """A params-shaped tree of None leaves: the paths every `model` params tree must have."""
    tree: dict[str, Any] = {}
    for path in LAYERS[model]:
        _nested_set(tree, path, {"kernel": None, "bias": None})
    return tree


def _check_chain(params: Mapping[str, Any], model: str) -> None:
    """Each layer must take the previous layer's width and each bias must fit its kernel."""
    previous = None
    for path in CHAINS[model]:
        layer = _nested_get(params, path)
        name = "/".join(path)
        kernel_shape, bias_shape = np.shape(layer["kernel"]), np.shape(layer["bias"])
        if len(kernel_shape) != 2 or bias_shape != kernel_shape[1:]:
            raise StateDictMismatchError(
                f"{name} has kernel {kernel_shape} and bias {bias_shape}, which do not form a "
                "dense layer; check where the params came from"
            )
        if previous is not None and kernel_shape[0] != previous[1]:
            raise StateDictMismatchError(
                f"{name} takes {kernel_shape[0]} inputs but the layer before it gives "
                f"{previous[1]}; the layer widths of the {model} are inconsistent"
            )
        previous = kernel_shape


def _strip_wrappers(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for wrapper in WRAPPER_PREFIXES:
            if key.startswith(wrapper):
                key, stripped = key[len(wrapper) :], True
    return key


def _to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (any device, with or without grad) or array as a host numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _nested_get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _nested_set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value
