"""Where a stage starts: the resume order, written once.

1. This stage's newest checkpoint (``WORKDIR/STAGE/checkpoints``), restored with its history;
2. else, for a stage that warm-starts (fine-tuning from a pretrain stage folder), the fresh state
   with the pretrained encoder transplanted: the head keeps its initialisation, the optimizer
   state starts afresh;
3. else the freshly initialised state.

`overwrite` skips 1. Whether to resume is decided once, before anything is loaded
(`resume_epoch`), so a fine-tuning run that resumes never needs the pretrained encoder, and the
encoder is loaded (`pretrained_encoder`) before an overwritten run's files are removed.
`start_state` applies the order.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from jax.sharding import Mesh
from tqdm.auto import tqdm

from aejax.config import StageConfig
from aejax.engine import distributed
from aejax.engine.train import TrainState, with_fresh_optimizer
from aejax.model.transplant import transplant_encoder
from aejax.run import checkpoint
from aejax.run.saved_stage import load_pretrained_encoder


@dataclasses.dataclass(frozen=True)
class StageStart:
    """What a stage can start from: the freshly initialised `state`, and for a stage that
    warm-starts, `encoder_source`, the pretrain stage folder whose encoder it transplants.

    `init_s` is how long building `state` took (reported with the stage's other phases). With a
    device `mesh` (`aejax.engine.parallel.data_mesh`), `state` is replicated on it and the stage
    trains data-parallel over its devices.
    """

    state: TrainState
    encoder_source: Path | None = None
    init_s: float = 0.0
    mesh: Mesh | None = None
    # What config.json records of the model, optimizer and objective (`aejax.run.workdir`).
    components: dict[str, Any] = dataclasses.field(default_factory=dict)
    # All that the stage's programs are built from, when all of it is aejax's: their kept
    # forms then load without a trace (`aejax.engine.untraced`); None: traced.
    recipe: str | None = None


def resume_epoch(config: StageConfig, overwrite: bool) -> int | None:
    """The checkpointed epoch a run of `config` continues from; None when it starts afresh."""
    return None if overwrite else checkpoint.latest_epoch(config.stage_dir / "checkpoints")


def pretrained_encoder(start: StageStart, resume: int | None) -> Any:
    """The encoder a stage that starts afresh transplants (None: it resumes, or never does)."""
    if resume is not None or start.encoder_source is None:
        return None
    return load_pretrained_encoder(start.encoder_source, start.state.params)


def start_state(
    start: StageStart, checkpoints: checkpoint.StageCheckpoints, resume: int | None, encoder
) -> tuple[TrainState, list[dict[str, Any]]]:
    """Where training begins, and the history so far: the resume order, in one place.

    1. This stage's checkpoint of epoch `resume` (`resume_epoch`), restored into the shape of the
       fresh state, with the history saved beside it.
    2. Else, with a pretrained `encoder` (`pretrained_encoder`), the fresh state with it
       transplanted: the head keeps its initialisation, the optimizer state starts afresh.
    3. Else the fresh state itself.
    """
    if resume is not None:
        epoch, state, meta = checkpoints.restore_newest_good(resume, start.state)
        history = checkpoint.checked_meta(meta, epoch, checkpoints.directory)["history"]
        if distributed.is_primary():  # on stderr: stdout carries the final metrics, as JSON
            where = f"{checkpoints.directory}/{epoch}"
            tqdm.write(f"resuming from {where} (epoch {epoch} done)", sys.stderr)
        return state, list(history)
    if encoder is not None:
        params = transplant_encoder(start.state.params, encoder)
        return with_fresh_optimizer(start.state, params, start.mesh, start.recipe), []
    return start.state, []
