"""The training loop both stages share: resume or start, one compiled epoch after another, a
checkpoint after each, optional early stopping, then the stage's outputs.

Resume order: this stage's newest checkpoint -> the start state the stage built (fine-tuning:
the transplanted pretrained encoder) -> fresh initialisation. Whether to resume is decided once,
before anything is loaded (`resume_epoch`), so a fine-tuning run that resumes never needs the
pretrained encoder and `overwrite` discards nothing until every input has loaded.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from aejax import checkpoint, distributed, early_stopping, observe, parallel, plots
from aejax.config import StageConfig
from aejax.data import Dataset, DeviceData, Split, to_device
from aejax.errors import TrainingInterrupted, UserError
from aejax.interrupt import StopRequest, stop_on_signal
from aejax.keys import epoch_key
from aejax.stage_report import final_metrics, summary_line
from aejax.train import (
    CompiledStage,
    MetricsFn,
    TrainState,
    compile_stage,
    run_epoch,
    steady_state_seconds,
)
from aejax.workdir import prepare_stage_dir, remove_stage_outputs, write_json, write_jsonl
from aejax.workdir_lock import holding_workdir_lock


@dataclasses.dataclass
class StageResult:
    """Final state, per-epoch history and summary metrics of a finished stage."""

    state: TrainState
    history: list[dict[str, Any]]
    metrics: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class StageStart:
    """Where a stage begins: `state` itself, or checkpoint `resume_epoch` restored into its shape.

    With `overwrite`, the stage's earlier checkpoints and outputs are removed before training.
    `init_s` is how long building `state` took (reported with the stage's other phases). With a
    device `mesh` (`aejax.parallel.data_mesh`), `state` is replicated on it and the stage trains
    data-parallel over its devices.
    """

    state: TrainState
    resume_epoch: int | None = None
    overwrite: bool = False
    init_s: float = 0.0
    mesh: Mesh | None = None


@dataclasses.dataclass(frozen=True)
class StageTask:
    """What a stage optimises, and what it draws from its final params besides its curves."""

    metrics_fn: MetricsFn
    figures: Callable[[Any], None] | None = None
    augmentation: tuple | None = None  # (augment, generator): training batches grow (generation)


def resume_epoch(config: StageConfig, overwrite: bool) -> int | None:
    """The checkpointed epoch a run of `config` continues from; None when it starts afresh."""
    return None if overwrite else checkpoint.latest_epoch(config.stage_dir / "checkpoints")


@dataclasses.dataclass
class StageRun:
    """One stage while it trains: what it runs, on what, and its history so far.

    `history` holds every epoch of the run, resumed ones included; the last `len(history) -
    resumed` rows were trained by this process, and only those are timed.
    """

    config: StageConfig
    compiled: CompiledStage
    data: DeviceData
    checkpoints: checkpoint.StageCheckpoints
    history: list[dict[str, Any]]
    resumed: int
    validator: early_stopping.Validator | None = None
    mesh: Mesh | None = None
    checkpoint_seconds: list[float] = dataclasses.field(default_factory=list)
    board: observe.TensorBoardLog | None = None
    profile_dir: str | None = None  # trace one steady-state epoch there

    def train(self, state, stop: StopRequest, progress: bool):
        """Train up to the configured epochs; stops early on a signal or stalled validation."""
        patience = self.validator.patience if self.validator else None
        bar = tqdm(
            total=self.config.train.epochs,
            initial=len(self.history),
            desc=self.config.stage,
            unit="epoch",
            disable=not progress,
            dynamic_ncols=True,
        )
        traced = observe.profile_epoch(len(self.history), self.config.train.epochs)
        for epoch in range(len(self.history), self.config.train.epochs):
            if stop.agreed() or early_stopping.should_stop(self.history, patience):
                break
            with observe.profiling(self.profile_dir if epoch == traced else None):
                state = self.train_epoch(state, epoch, progress)
            bar.set_postfix(loss=f"{self.history[-1]['train_loss']:.4f}")
            bar.update(1)
        bar.close()
        return state

    def train_epoch(self, state, epoch: int, progress: bool):
        """Epoch `epoch` (from 0): train, test, validate, checkpoint, log."""
        # The previous epoch's checkpoint is still being written in the background: it overlaps
        # this epoch (a few ms of file writes) instead of holding it up.
        key = epoch_key(self.config, epoch, self.mesh)
        state, record, step_losses = run_epoch(self.compiled, state, self.data, key, epoch + 1)
        row = record.as_dict()
        if self.validator:
            started = time.perf_counter()
            row.update(self.validator(state.params))
            row["eval_s"] += time.perf_counter() - started
        self.history.append(row)
        score = early_stopping.score(row) if self.validator else None
        # A copy: the save is asynchronous and the next epoch appends to the history.
        meta = {"history": list(self.history), "config": self.config.to_dict()}
        started = time.perf_counter()
        with jax.profiler.TraceAnnotation("checkpoint"):  # a named region of a profile
            self.checkpoints.save(epoch + 1, state, meta, score=score)
        # Time blocked on checkpoints (Orbax waits for the previous save before starting this
        # one); kept apart from `row`, which the asynchronous save may still be serialising.
        self.checkpoint_seconds.append(time.perf_counter() - started)
        write_jsonl(self.config.stage_dir / "metrics.jsonl", self.history)
        if self.board:
            self.board.epoch(row, len(self.data.train.labels))
        if progress:
            tqdm.write(summary_line(self.config, record, step_losses))
        return state

    def seconds_per_epoch(self) -> float | None:
        return steady_state_seconds([r["seconds"] for r in self.history[self.resumed :]])

    def total(self, key: str) -> float:
        """Sum of `key` over the epochs this process trained (e.g. all their training time)."""
        return sum(r.get(key, 0.0) for r in self.history[self.resumed :])


@holding_workdir_lock  # one run per workdir: taken before anything is removed or written
def train_stage(
    config: StageConfig,
    data: Dataset,
    start: StageStart,
    task: StageTask,
    progress: bool,
    val: Split | None = None,
    seen: observe.Observe = observe.DEFAULT,
) -> StageResult:
    """Train `config`'s stage from `start` on `data` (validating on `val`), write its outputs;
    `seen`: its TensorBoard events and profiler trace (`aejax.observe`)."""
    started = time.perf_counter()
    _refuse_bad_inputs(config, data, seen)
    if start.overwrite:
        remove_stage_outputs(config)
    stage_dir = prepare_stage_dir(config, start.state)
    device_data = to_device(data, val, parallel.replicated(start.mesh))
    checkpoints = checkpoint.StageCheckpoints(
        stage_dir / "checkpoints", config.train.keep_checkpoints, track_best=val is not None
    )
    board = _open_board(config, start.state.params, seen, progress)
    with checkpoints:
        run, state = _begin(config, start, task, device_data, checkpoints)
        run.board, run.profile_dir = board, seen.profile_dir
        state, best = _train(run, state, progress)
    metrics = final_metrics(run, data, start)
    if best is not None:
        metrics.update(best, num_val=len(val.labels))
    metrics.update(_write_outputs(run, state, task, data))
    metrics["wall_s"] = time.perf_counter() - started + start.init_s
    write_json(stage_dir / "metrics.json", metrics)
    return StageResult(state, run.history, metrics)


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


def _open_board(config: StageConfig, params, seen: observe.Observe, progress: bool):
    """The stage's TensorBoard log (or None), its settings written; the parameter table shown."""
    if progress and distributed.is_primary():
        observe.print_summary(params, f"{config.stage}: parameters")
    board = observe.TensorBoardLog.open(config.stage_dir, seen.tensorboard)
    if board:
        board.hyperparameters(config.to_dict(), ["test/loss"])
    return board


def _write_outputs(run: StageRun, state, task: StageTask, data: Dataset) -> dict[str, float]:
    """Curves and the stage's figures (process 0), TensorBoard's image; what each took."""
    started, stage_dir, board = time.perf_counter(), run.config.stage_dir, run.board
    if distributed.is_primary():
        title = f"{run.config.stage}: {data.name}"
        plots.save_curves(run.history, stage_dir / "curves.png", title)
        if task.figures:
            task.figures(state.params)
    spent = {"figures_s": time.perf_counter() - started}
    if board:
        plots.wait_for_figures(stage_dir / "reconstructions.png")  # when drawn aside
        board.image("reconstructions", stage_dir / "reconstructions.png", len(run.history))
        board.close()
        spent["tensorboard_s"] = board.seconds
    return spent


def _train(run: StageRun, state, progress: bool):
    """Train `run` to its end; the final state (the best epoch's, with early stopping) and, with
    early stopping, that epoch's figures. A signal ends it with `TrainingInterrupted`."""
    with stop_on_signal() as stop:
        state = run.train(state, stop, progress)
    started = time.perf_counter()
    run.checkpoints.wait_until_saved()  # the last epoch's checkpoint, before anything reads it
    run.checkpoint_seconds.append(time.perf_counter() - started)
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


def _begin(config, start: StageStart, task: StageTask, data: DeviceData, checkpoints):
    """The run's loop state and its first train state: restored, or `start.state` itself."""
    state, history = start.state, []
    if start.resume_epoch is not None:
        state, meta = checkpoints.restore(start.resume_epoch, state)
        history = list(meta["history"])
        # On stderr: stdout carries the final metrics, as JSON, for whoever pipes them on.
        done = start.resume_epoch
        if distributed.is_primary():
            where = f"{checkpoints.directory}/{done}"
            tqdm.write(f"resuming from {where} (epoch {done} done)", sys.stderr)
    batch_size = config.train.batch_size
    key = epoch_key(config, 0, start.mesh)
    metrics_fn = task.metrics_fn
    augmentation = task.augmentation
    if augmentation is not None:  # the generator joins the data: replicated on the mesh
        augmentation = (augmentation[0], parallel.place(augmentation[1], start.mesh))
    compiled = compile_stage(metrics_fn, state, data, batch_size, key, start.mesh, augmentation)
    validator = None
    if data.val is not None:
        # Only fine-tuning holds out a validation split, and its config says how patient to be.
        patience = config.early_stopping.patience
        validator = early_stopping.Validator(
            metrics_fn, state.params, data.val, batch_size, patience, start.mesh
        )
    run = StageRun(
        config, compiled, data, checkpoints, history, len(history), validator, start.mesh
    )
    return run, state
