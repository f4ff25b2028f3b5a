"""What a checkpoint held when it was saved, so that a restore can tell when its files changed:
a sha256 over a state's leaves, recorded in the step's metadata and checked on restore."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jax
import numpy as np

from aejax.errors import CheckpointError

DIGESTS = "sha256"  # meta: {"state": digest of the whole state, "params": of its params alone}


class DamagedCheckpointError(CheckpointError):
    """A checkpoint restored, but not to what was saved: its bytes changed on disk."""


def tree_digest(tree: Any) -> str | None:
    """sha256 of every leaf of `tree` (path, shape, dtype and bytes), or None when this process
    cannot see all of it (a leaf split, not replicated, over several hosts)."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    local = [_whole_here(leaf) for _, leaf in leaves]
    if any(value is None for value in local):
        return None
    digest = hashlib.sha256()
    for (path, _), value in zip(leaves, jax.device_get(local), strict=True):
        if jax.dtypes.issubdtype(getattr(value, "dtype", None), jax.dtypes.prng_key):
            value = jax.random.key_data(value)
        array = np.ascontiguousarray(value)
        digest.update(f"{jax.tree_util.keystr(path)} {array.shape} {array.dtype}\n".encode())
        digest.update(array.reshape(-1).view(np.uint8).data)  # its bytes, without a copy
    return digest.hexdigest()


def _whole_here(leaf: Any) -> Any:
    """`leaf`, or a copy of it this process holds whole (each host of a data-parallel run holds
    a replica of the state), or None when no process holds all of it."""
    if getattr(leaf, "is_fully_addressable", True):
        return leaf
    return leaf.addressable_data(0) if leaf.is_fully_replicated else None


def digests(state: Any) -> dict[str, str]:
    """The digests a checkpoint of `state` records: of its params, and of the whole state made of
    that and of the rest (each leaf read and hashed once); none when a process sees only part."""
    params, rest = state.params, state.replace(params=None)
    found = {"params": tree_digest(params), "rest": tree_digest(rest)}
    if None in found.values():
        return {}
    whole = hashlib.sha256(f"{found['params']} {found['rest']}".encode()).hexdigest()
    return {"params": found["params"], "state": whole}


def verify(tree: Any, meta: dict[str, Any], part: str, where: Path) -> None:
    """Raise `DamagedCheckpointError` unless `tree` is what `meta` says was saved as `part`
    (nothing to check in checkpoints of earlier versions, which recorded no digest)."""
    recorded = (meta.get(DIGESTS) or {}).get(part)
    if recorded is None:
        return
    found = digests(tree).get("state") if part == "state" else tree_digest(tree)
    # None: this process sees only part of the arrays (several hosts), so it cannot check them.
    if found is not None and found != recorded:
        raise DamagedCheckpointError(
            f"checkpoint {where} does not hold what was saved (its {part} digest differs: the "
            "files changed on disk)",
            settings=("workdir",),
        )
