"""One saved step read alone, without a manager over its folder (a run still writing there may
remove an older step meanwhile): the params it holds as metadata, and a subtree of its arrays
(Orbax partial restore), checked against the shapes asked for and, when asked, the digest."""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from aejax.errors import CheckpointError
from aejax.model import trees
from aejax.run.state_digest import verify

STATE_ITEM = "state"
META_ITEM = "meta"


class UnreadableCheckpointError(CheckpointError):
    """Orbax could not read a checkpoint: damaged, or removed while it was being read."""


def abstract_like(tree):
    """Shape/dtype/sharding structs of `tree`: the restore target that allocates nothing."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def saved_params_like(directory: str | Path, epoch: int) -> dict[str, Any]:
    """The params saved at `epoch` as shape/dtype structs, read from metadata, no array loaded."""
    path = Path(directory).absolute() / str(epoch) / STATE_ITEM
    try:
        with _quiet_about_step_metadata():
            tree = dict(ocp.StandardCheckpointer().metadata(path).item_metadata)
        params = dict(tree["params"])
        return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype), params)
    except Exception as err:  # noqa: BLE001 - Orbax raises many types for bad checkpoints
        raise UnreadableCheckpointError(
            f"cannot read checkpoint metadata in {path} ({first_line(err)})"
        ) from err


def saved_param_shapes(directory: str | Path, epoch: int) -> dict[str, Any]:
    """Shapes of the params saved at `epoch`, read from metadata without loading any array."""
    structs = saved_params_like(directory, epoch)
    return jax.tree.map(lambda leaf: tuple(leaf.shape), structs)


def other_shapes(directory: str | Path, epoch: int, params_like: Any) -> CheckpointError | None:
    """The error to give when step `epoch` holds params of other shapes than `params_like` (it
    was trained with other settings, and is not damaged); None when they fit."""
    saved = saved_params_like(directory, epoch)
    wrong = [d for d in trees.differences(abstract_like(params_like), saved) if d.kind == "shape"]
    return _shapes_differ(Path(directory).absolute() / str(epoch), wrong) if wrong else None


def _shapes_differ(where: Path, wrong: list[trees.Difference]) -> CheckpointError:
    shapes = "; ".join(f"{d.path} {d.actual}, not {d.expected}" for d in wrong[:3])
    return CheckpointError(
        f"checkpoint {where} holds arrays of other shapes than the model's ({shapes}); it was "
        "trained with other settings",
        settings=("hidden", "latent"),
    )


def restore_subtree(
    directory: str | Path, epoch: int, target: dict[str, Any], verify_params: bool = False
) -> dict[str, Any]:
    """Restore only the leaves named by `target` (a nested dict inside the state) from `epoch`;
    with `verify_params` (`target` holds all the params), check them against their digest.
    Leaves of `target` without a sharding are read as NumPy arrays."""
    return restore_subtree_and_meta(directory, epoch, target, verify_params)[0]


def restore_subtree_and_meta(
    directory: str | Path, epoch: int, target: dict[str, Any], verify_params: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`restore_subtree`, and the step's JSON metadata beside it."""
    target = abstract_like(target)
    restore = ocp.args.PyTreeRestore(
        item=target,
        restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True,
    )
    where = Path(directory).absolute() / str(epoch)
    args = ocp.args.Composite(**{STATE_ITEM: restore, META_ITEM: ocp.args.JsonRestore()})
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            restored = checkpointer.restore(where, args=args)
    except Exception as err:  # noqa: BLE001 - Orbax raises many types for bad checkpoints
        raise UnreadableCheckpointError(
            f"checkpoint {where} cannot be read ({first_line(err)}); it is damaged, or was "
            "removed by a run still writing there"
        ) from err
    # A partial restore hands back the stored shapes, whatever the target's: compare them.
    wrong = [d for d in trees.differences(target, restored[STATE_ITEM]) if d.kind == "shape"]
    if wrong:
        raise _shapes_differ(where, wrong)
    meta = restored[META_ITEM] or {}
    if verify_params:
        verify(restored[STATE_ITEM]["params"], meta, "params", where)
    return restored[STATE_ITEM], meta


class _StepMetadataNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "_CHECKPOINT_METADATA" not in record.getMessage()


@contextlib.contextmanager
def _quiet_about_step_metadata():
    """Without Orbax's warning that an item folder lacks ``_CHECKPOINT_METADATA``: reading one
    item alone, Orbax looks there for the metadata its CheckpointManager keeps a level up."""
    logger, notice = logging.getLogger("absl"), _StepMetadataNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def collect_a_failed_read() -> None:
    """Finalise now, silently, what a failed Orbax read left behind. Its coroutines and tasks,
    closed whenever the garbage collector reaches them, would each re-raise the read's error as
    an "Exception ignored in <coroutine ...>" traceback on stderr, somewhere later in the run
    that went on without that step; the run has already said what failed, in one line."""
    hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None
    asyncio_log = logging.getLogger("asyncio")  # "Task exception was never retrieved"
    was_disabled, asyncio_log.disabled = asyncio_log.disabled, True
    try:
        with warnings.catch_warnings():  # "coroutine ... was never awaited"
            warnings.simplefilter("ignore")
            gc.collect()
    finally:
        sys.unraisablehook, asyncio_log.disabled = hook, was_disabled
