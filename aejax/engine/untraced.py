"""Finding a kept program without tracing it: a key made of what the program is built from.

Tracing a stage's programs only to hash them costs a warm run more than loading them. A caller
that can name everything its program is built from passes a *recipe* (`compile_program`'s
``recipe``): a string that fixes the Python function and every value it closes over, e.g. the
stage, the program's role and the config fields that shape it. The key is then the recipe plus

- a digest of aejax's own source files (a changed file may change any program),
- the versions of JAX, jaxlib, Flax, Optax, NumPy and Python, JAX's configuration, the backend,
  its device kind, the host CPU and the XLA options (`compile_cache.environment`),
- the arguments' types, shardings and donation.

Whoever passes a recipe promises that nothing else reaches the program: a stage passes none when
the caller gave it a model, optimizer or objective of their own (their code is not aejax's), and
such programs are traced and keyed on their jaxpr as before.

The recipe's entry (``<key>.recipe``) names the kept program (stored once, under the key of its
trace: after an upgrade that leaves a program as it was, its trace finds it again) and the tree
structure of its outputs, which only a trace reveals; any part of that with an argument's
structure (the train state an epoch hands back) is recorded as that argument, since it holds
unpicklable functions.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pickle
import platform
import sys
from pathlib import Path

import jax
import jaxlib
import numpy as np

PACKAGE = Path(__file__).resolve().parent.parent  # aejax/
FORMAT = 2  # of the kept programs; a change gives every program a new key


def environment(options: dict | None) -> str:
    """Everything outside the program that its compiled form depends on: versions, JAX's
    configuration, the backend and device kind, the host CPU and the compiler's options."""
    import flax
    import optax

    versions = (FORMAT, jax.__version__, jaxlib.__version__, sys.version, platform.machine())
    versions += (flax.__version__, optax.__version__, np.__version__)
    device = jax.devices()[0]
    settings = sorted(jax.config.values.items())
    compiler = (sorted((options or {}).items()), os.environ.get("XLA_FLAGS", ""))
    parts = (*versions, device.platform, device.device_kind, settings, compiler, _host_cpu())
    return "".join(f"{part}\0" for part in parts)


@functools.cache
def _host_cpu() -> str:
    """The host CPU's model and instruction-set extensions, as far as the system says."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return f"{platform.processor()} {platform.machine()}"


def source_digest(package: Path) -> str:
    """SHA-256 over the names and contents of every ``.py`` file of the package. Not cached
    (about a millisecond): a file edited and reloaded in a live session counts at once."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(f"{path.relative_to(package)}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def recipe_key(recipe: str, environment: str, args: tuple, donate_argnums: tuple[int, ...]) -> str:
    """The kept program's name for `recipe` on `args`, found without tracing."""
    digest = hashlib.sha256()
    for part in ("recipe", recipe, source_digest(PACKAGE), environment):
        digest.update(f"{part}\0".encode())
    for i, arg in enumerate(args):
        # Paths, not the tree structure: its text holds the addresses of a train state's
        # functions, which change from process to process. A None is a node, not a leaf.
        paths = jax.tree_util.tree_flatten_with_path(arg, is_leaf=lambda x: x is None)[0]
        for path, leaf in paths:
            sharding = getattr(leaf, "sharding", None)  # none: a NumPy or Python value
            kind = "None" if leaf is None else f"{jax.typeof(leaf)}\0{sharding}"
            where = jax.tree_util.keystr(path)
            digest.update(f"{i}{where}\0{i in donate_argnums}\0{kind}\0".encode())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class SameAsArgument:
    """In an output template: a part with the structure of argument `index`."""

    index: int


def recipe_entry(program: str, out_tree, args: tuple) -> bytes | None:
    """The kept `program`'s name and its `out_tree` as bytes (parts shaped like an argument named
    by its index), or None when some part cannot be pickled (then traced on every run)."""
    arg_trees = [jax.tree.structure(arg) for arg in args]

    def template(node):
        tree = jax.tree.structure(node)
        if tree.num_leaves and tree in arg_trees:
            return SameAsArgument(arg_trees.index(tree))
        if isinstance(node, tuple | list):
            children = [template(child) for child in node]
            return type(node)(*children) if hasattr(node, "_fields") else type(node)(children)
        if isinstance(node, dict):
            return {key: template(child) for key, child in node.items()}
        return node

    example = jax.tree.unflatten(out_tree, [0] * out_tree.num_leaves)
    try:
        return pickle.dumps((program, template(example)))
    except (pickle.PicklingError, AttributeError, TypeError):
        return None


def read_recipe_entry(blob: bytes, args: tuple) -> tuple[str, object]:
    """The kept program's name and its output structure for `args`, as `recipe_entry` wrote."""

    def rebuild(node):
        if isinstance(node, SameAsArgument):
            tree = jax.tree.structure(args[node.index])
            return jax.tree.unflatten(tree, [0] * tree.num_leaves)
        if isinstance(node, tuple | list):
            children = [rebuild(child) for child in node]
            return type(node)(*children) if hasattr(node, "_fields") else type(node)(children)
        if isinstance(node, dict):
            return {key: rebuild(child) for key, child in node.items()}
        return node

    program, template = pickle.loads(blob)  # noqa: S301 - a private folder (`compile_cache`)
    return str(program), jax.tree.structure(rebuild(template))
