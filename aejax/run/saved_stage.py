"""A finished stage read back from its folder: its config, model and newest params, and the
pretrained encoder alone (Orbax partial restore of the encoder subtree), for a transplant."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from aejax.config import StageConfig
from aejax.contracts import Params
from aejax.errors import CheckpointError
from aejax.model.models import ENCODER
from aejax.model.tasks import stage_model
from aejax.model.transplant import check_encoder_fits
from aejax.run import checkpoint, saved_step
from aejax.run.state_digest import DamagedCheckpointError
from aejax.run.workdir import MODEL, TRAINED_ON, read_stage_config

MAX_READ_ATTEMPTS = 20  # checkpoints tried before giving up on a run that keeps replacing them


@dataclasses.dataclass(frozen=True)
class SavedStage:
    """A stage folder's config, its model, the params of its newest checkpoint, and what its
    config.json records of the run's identity (`aejax.run.workdir.IDENTITY`; empty from earlier
    versions), the data it trained on among it."""

    config: StageConfig
    model: nn.Module
    params: Any
    epoch: int
    identity: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def trained_on(self) -> dict[str, Any] | None:
        return self.identity.get(TRAINED_ON)


def load_stage(stage_dir: str | Path, model: nn.Module | None = None) -> SavedStage:
    """The newest checkpoint of a stage folder, restored without loading its dataset; `model`:
    the one it trained, where that was your own (the config describes the others)."""
    stage_dir = Path(stage_dir)
    config_path, checkpoints = stage_dir / "config.json", stage_dir / "checkpoints"
    if not config_path.exists():
        raise CheckpointError(f"{stage_dir} is not a stage folder (no config.json)")
    config, identity = read_stage_config(stage_dir)
    own = identity.get(MODEL, {})
    if own.get("given") and model is None:
        raise CheckpointError(
            f"{stage_dir} trained your own model ({own['class']}); pass it: "
            "load_stage(stage_dir, model=...)"
        )

    def read(epoch: int) -> tuple[nn.Module, Params]:
        input_dim = _input_dim(checkpoints, epoch, identity)
        read_model = model or stage_model(config, input_dim)
        template = jax.eval_shape(read_model.init, jax.random.key(0), jnp.zeros((1, input_dim)))
        target = {"params": template["params"]}
        state, meta = saved_step.restore_subtree_and_meta(
            checkpoints, epoch, target, verify_params=True
        )
        checkpoint.checked_meta(meta, epoch, checkpoints)  # damaged metadata: one line
        return read_model, state["params"]

    epoch, (model, params) = read_newest(checkpoints, read)
    return SavedStage(config, model, params, epoch, identity)


def _input_dim(checkpoints: Path, epoch: int, identity: dict[str, Any]) -> int:
    """The features of an input: as the data record says, else (folders of earlier versions, all
    of the built-in MLP) as the encoder's first layer does."""
    if TRAINED_ON in identity:
        return int(identity[TRAINED_ON]["train"]["features"])
    return saved_step.saved_param_shapes(checkpoints, epoch)[ENCODER]["hidden"]["kernel"][0]


def load_pretrained_encoder(pretrain_dir: str | Path, classifier_params: Params) -> Params:
    """The encoder of the newest pretrain checkpoint (Orbax partial restore), shape-checked."""
    checkpoints_dir = Path(pretrain_dir) / "checkpoints"
    if checkpoint.latest_epoch(checkpoints_dir) is None:
        raise CheckpointError(
            f"no pretrained checkpoint in {checkpoints_dir}; pretrain into the same workdir "
            "first, or name a finished pretrain stage folder as pretrained_dir",
            settings=("workdir", "pretrained_dir"),
        )

    def read(epoch: int) -> Params:
        saved = saved_step.saved_params_like(checkpoints_dir, epoch)
        if ENCODER not in saved:
            raise CheckpointError(f"checkpoint {checkpoints_dir}/{epoch} holds no encoder")
        check_encoder_fits(classifier_params, saved[ENCODER])
        # All the params, to check their digest; the rest (the decoder) is read as NumPy arrays.
        target = {"params": {**saved, ENCODER: classifier_params[ENCODER]}}
        state = saved_step.restore_subtree(checkpoints_dir, epoch, target, verify_params=True)
        return state["params"][ENCODER]

    return read_newest(checkpoints_dir, read)[1]


def read_newest(directory: str | Path, read: Callable[[int], Any]) -> tuple[int, Any]:
    """``(epoch, read(epoch))`` for the newest checkpoint that can be read. One that a live run
    removes meanwhile is passed over (the newer one it saved is read instead), one that is damaged
    with one warning line. None readable: the newest one's error."""
    directory = Path(directory)
    failures: dict[int, Exception] = {}
    while len(failures) < MAX_READ_ATTEMPTS:
        untried = [e for e in checkpoint.committed_epochs(directory) if e not in failures]
        if not untried:
            break
        epoch = untried[0]
        try:
            return epoch, read(epoch)
        except (saved_step.UnreadableCheckpointError, DamagedCheckpointError) as err:
            failures[epoch] = err
            if (directory / str(epoch)).exists() and len(untried) > 1:
                print(f"warning: {err}; reading the one before", file=sys.stderr)
    if not failures:
        raise CheckpointError(f"no checkpoint in {directory}")
    raise failures[max(failures)]
