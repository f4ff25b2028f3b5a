"""The training loop both stages share: one compiled epoch after another, a checkpoint after
each, optional early stopping, then the stage's outputs. Where a stage starts is
`aejax.run.resume` (the resume order, written once)."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aejax.config import StageConfig
from aejax.contracts import Augmentation, MetricsFn
from aejax.data.datasets import Dataset, DeviceData, Split, to_device
from aejax.engine import distributed, parallel
from aejax.engine.epochs import compile_stage
from aejax.engine.keys import epoch_key
from aejax.engine.train import TrainState
from aejax.errors import TrainingInterrupted, UserError, disk_full
from aejax.figures import plots
from aejax.model.tasks import Task
from aejax.run import checkpoint, early_stopping, observe
from aejax.run.interrupt import stop_on_signal
from aejax.run.options import RunOptions
from aejax.run.resume import StageStart, pretrained_encoder, resume_epoch, start_state
from aejax.run.stage_report import final_metrics
from aejax.run.stage_run import Callback, StageRun
from aejax.run.workdir import (
    TRAINED_ON,
    prepare_stage_dir,
    remove_stage_outputs,
    write_json,
)
from aejax.run.workdir_lock import holding_workdir_lock


@dataclasses.dataclass
class StageResult:
    """Final state, per-epoch history and summary metrics of a finished stage, and the per-step
    training losses of the epochs this process trained (one array per epoch)."""

    state: TrainState
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    step_losses: list[np.ndarray] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class StageTask:
    """What a stage is (`kind`: its report and figure files), what it optimises, what it draws
    from its final params besides its curves, and what extends its training batches."""

    kind: Task
    metrics_fn: MetricsFn
    figures: Callable[[Any], None] | None = None
    augmentation: Augmentation | None = None  # training batches grow (`aejax.model.generation`)
    callbacks: tuple[Callback, ...] = ()


def disk_full_is_said(function):
    """Decorate a stage (its config first): a write that finds the disk full (a checkpoint, a
    metrics file, a figure) ends it as a `DiskFullError`, one line naming the file or else the
    stage folder, the checkpoints written so far kept."""

    @functools.wraps(function)
    def stage(config, *args, **kwargs):
        try:
            return function(config, *args, **kwargs)
        except UserError:
            raise
        except Exception as err:
            full = disk_full(err, config.stage_dir)
            if full is None:
                raise
            raise full from err

    return stage


@disk_full_is_said
@holding_workdir_lock  # one run per workdir: taken before anything is removed or written
def train_stage(
    config: StageConfig,
    data: Dataset,
    start: StageStart,
    task: StageTask,
    options: RunOptions,
    val: Split | None = None,
) -> StageResult:
    """Train `config`'s stage from where `start_state` says on `data` (validating on `val`),
    and write its outputs."""
    started = time.perf_counter()
    _refuse_bad_inputs(config, data, options.observe)
    resume = resume_epoch(config, options.overwrite)
    encoder = pretrained_encoder(start, resume)  # an input: loaded before anything is removed
    if options.overwrite:
        remove_stage_outputs(config, task.kind.figure_files)
    identity = {TRAINED_ON: data.fingerprint(), **start.components}
    stage_dir = prepare_stage_dir(config, start.state, identity)
    device_data = to_device(data, val, parallel.replicated(start.mesh))
    checkpoints = checkpoint.StageCheckpoints(
        stage_dir / "checkpoints", config.train.keep_checkpoints, track_best=val is not None
    )
    with checkpoints:
        state, history = start_state(start, checkpoints, resume, encoder)
        board = _open_board(config, start.state.params, options)  # once the start is sound
        run = _begin(config, start, task, device_data, state, history, checkpoints, board, options)
        state, best = _train(run, state, options.progress)
        figures_s = _draw_figures(run, state, task, data)  # drawn aside while the last save commits
        run.wait_for_last_save()
    report = task.kind.report(config, run.history[-1])
    metrics = final_metrics(config, run.history, data, run.times(start.init_s), report)
    if best is not None:
        metrics.update(best, num_val=len(val.labels))
    metrics.update(figures_s=figures_s, **_close_board(run, task))
    metrics["wall_s"] = time.perf_counter() - started + start.init_s
    write_json(stage_dir / "metrics.json", metrics)
    if run.stopped_by:
        metrics["stopped_by"] = run.stopped_by
    return StageResult(state, run.history, metrics, run.step_losses)


def _refuse_bad_inputs(config: StageConfig, data: Dataset, seen: observe.Observe) -> None:
    """What must hold before anything is removed or written, in every process."""
    observe.prepare_profile_dir(seen.profile_dir)
    if config.train.batch_size > len(data.train_labels):
        raise UserError(
            f"batch size {config.train.batch_size} exceeds the {len(data.train_labels)} "
            "training examples",
            settings=("batch_size",),
        )
    distributed.require_shared_workdir(config.workdir)
    distributed.require_same_data(*data.train, *data.test)


def _open_board(config: StageConfig, params, options: RunOptions):
    """The stage's TensorBoard log (or None), its settings written; the parameter table shown."""
    if options.progress and distributed.is_primary():
        observe.print_summary(params, f"{config.stage}: parameters")
    board = observe.TensorBoardLog.open(config.stage_dir, options.observe.tensorboard)
    if board:
        board.hyperparameters(config.to_dict(), ["test/loss"])
    return board


def _draw_figures(run: StageRun, state, task: StageTask, data: Dataset) -> float:
    """Curves and the stage's figures (process 0); the seconds it took to make or hand them over."""
    started = time.perf_counter()
    if distributed.is_primary():
        title = f"{run.config.stage}: {data.name}"
        plots.save_curves(run.history, run.config.stage_dir / "curves.png", title)
        if task.figures:
            task.figures(state.params)
    return time.perf_counter() - started


def _close_board(run: StageRun, task: StageTask) -> dict[str, float]:
    """TensorBoard's image (once drawn) and the log closed; the seconds its writes took."""
    board, stage_dir = run.board, run.config.stage_dir
    if not board:
        return {}
    image = task.kind.board_image
    if image:
        plots.wait_for_figures(stage_dir / image)  # when drawn aside
        board.image(Path(image).stem, stage_dir / image, len(run.history))
    board.close()
    return {"tensorboard_s": board.seconds}


def _train(run: StageRun, state, progress: bool):
    """Train `run` to its end; the final state (the best epoch's, with early stopping) and, with
    early stopping, that epoch's figures. A signal ends it with `TrainingInterrupted`. The last
    checkpoint may still be committing (`StageRun.wait_for_last_save`) unless it was read."""
    with stop_on_signal() as stop:
        state = run.train(state, stop, progress)
    if stop.requested or run.validator:  # the last epoch's checkpoint, before anything reads it
        run.wait_for_last_save()
    if stop.requested:
        raise TrainingInterrupted(
            f"interrupted: {run.config.stage} stopped after epoch {len(run.history)}, checkpoint "
            f"in {run.checkpoints.directory}; run the same command again to resume",
            stop.signum,
        )
    if not run.history:
        raise UserError(f"{run.config.stage_dir} trained no epoch")
    if not run.validator:
        return state, None
    return early_stopping.restore_best(
        run.checkpoints, state, run.compiled.evaluate, run.data.test, run.history
    )


def _begin(
    config: StageConfig,
    start: StageStart,
    task: StageTask,
    data: DeviceData,
    state: TrainState,
    history: list[dict[str, Any]],
    checkpoints: checkpoint.StageCheckpoints,
    board: observe.TensorBoardLog | None,
    options: RunOptions,
) -> StageRun:
    """The run's loop state, its programs compiled for `state`, the one it starts from."""
    key = epoch_key(config, 0, start.mesh)
    augmentation = task.augmentation
    if augmentation is not None:  # the generator joins the data: replicated on the mesh
        augmentation = augmentation._replace(
            generator=parallel.place(augmentation.generator, start.mesh)
        )
    batch_size = config.train.batch_size
    compiled = compile_stage(
        task.metrics_fn, state, data, batch_size, key, start.mesh, augmentation, start.recipe
    )
    validator = None
    if data.val is not None:
        # Only fine-tuning holds out a validation split, and its config says how patient to be.
        patience = config.early_stopping.patience
        validator = early_stopping.Validator(
            task.metrics_fn, state.params, data.val, batch_size, patience, start.mesh, start.recipe
        )
    profile_dir = options.observe.profile_dir
    run = (config, compiled, data, checkpoints, history, len(history), validator, start.mesh)
    return StageRun(*run, board, profile_dir, task.callbacks)
