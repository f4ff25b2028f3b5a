"""Comparing parameter trees: leaf paths and shapes, and what is missing, extra or reshaped."""

import jax
import jax.numpy as jnp
import numpy as np

from aejax.config import ModelConfig
from aejax.model.models import make_classifier
from aejax.model.trees import Difference, differences, leaf_shapes


def test_leaf_shapes_names_each_leaf_by_its_path():
    tree = {"hidden": {"kernel": np.zeros((784, 32)), "bias": jnp.zeros(32)}, "scale": 2.0}
    assert leaf_shapes(tree) == {"hidden/kernel": (784, 32), "hidden/bias": (32,), "scale": ()}
    assert leaf_shapes({"a": {"b": None}}) == {"a/b": None}
    abstract = {"w": jax.ShapeDtypeStruct((3, 4), jnp.float32)}
    assert leaf_shapes(abstract) == {"w": (3, 4)}


def test_leaf_shapes_of_a_model_cover_every_param():
    params = make_classifier(ModelConfig(hidden=8, latent=4)).init(
        jax.random.key(0), jnp.zeros((1, 20))
    )["params"]
    assert leaf_shapes(params) == {
        "encoder/hidden/kernel": (20, 8),
        "encoder/hidden/bias": (8,),
        "encoder/latent/kernel": (8, 4),
        "encoder/latent/bias": (4,),
        "head/kernel": (4, 10),
        "head/bias": (10,),
    }


def test_identical_structures_have_no_differences():
    tree = {"a": {"k": np.zeros((2, 3))}, "b": np.zeros(3)}
    assert differences(tree, jax.tree.map(np.ones_like, tree)) == []


def test_differences_are_missing_then_unexpected_then_shape_each_sorted():
    expected = {"a": np.zeros((2, 3)), "b": np.zeros(3), "c": np.zeros(1), "d": np.zeros(4)}
    actual = {"a": np.zeros((3, 2)), "d": np.zeros(4), "z": np.zeros(5), "y": np.zeros(())}
    assert differences(expected, actual) == [
        Difference("b", "missing", (3,), None),
        Difference("c", "missing", (1,), None),
        Difference("y", "unexpected", None, ()),
        Difference("z", "unexpected", None, (5,)),
        Difference("a", "shape", (2, 3), (3, 2)),
    ]


def test_shapes_can_be_ignored():
    expected = {"layer": {"kernel": None, "bias": None}}  # paths only, as a template
    actual = {"layer": {"kernel": np.zeros((2, 2)), "bias": np.zeros(2)}}
    assert differences(expected, actual, shapes=False) == []
    assert differences(expected, actual) == [
        Difference("layer/bias", "shape", None, (2,)),
        Difference("layer/kernel", "shape", None, (2, 2)),
    ]
    extra = {**actual, "head": {"kernel": np.zeros(1)}}
    assert differences(expected, extra, shapes=False) == [
        Difference("head/kernel", "unexpected", None, (1,))
    ]
