"""One stage while it trains: its epochs one after another, each checkpointed, logged and shown
to the callbacks, until the configured epochs, a signal, stalled validation or a callback ends
it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from aejax.config import StageConfig
from aejax.data.datasets import DeviceData
from aejax.engine.epochs import CompiledStage, run_epoch, steady_state_seconds
from aejax.engine.keys import epoch_key
from aejax.model.optim import learning_rate
from aejax.run import checkpoint, early_stopping, observe
from aejax.run.interrupt import StopRequest
from aejax.run.stage_report import StageTimes, summary_line
from aejax.run.workdir import write_jsonl

# Called on the host after each epoch's checkpoint with that epoch's metrics row and the train
# state; a true result ends training after that epoch.
Callback = Callable[[dict[str, Any], Any], Any]


@dataclasses.dataclass
class StageRun:
    """One stage while it trains: what it runs, on what, and its history so far.

    `history` holds every epoch of the run, resumed ones included; the last `len(history) -
    resumed` rows were trained by this process, and only those are timed (`step_losses` holds
    their per-step losses). `board` is its TensorBoard log (or None); one steady-state epoch is
    traced into `profile_dir`, if set. After each epoch every callback sees its row and the state;
    one that returns True ends training there (`stopped_by` names it).
    """

    config: StageConfig
    compiled: CompiledStage
    data: DeviceData
    checkpoints: checkpoint.StageCheckpoints
    history: list[dict[str, Any]]
    resumed: int
    validator: early_stopping.Validator | None = None
    mesh: Mesh | None = None
    board: observe.TensorBoardLog | None = None
    profile_dir: str | None = None
    callbacks: tuple[Callback, ...] = ()
    checkpoint_seconds: list[float] = dataclasses.field(default_factory=list)
    step_losses: list[np.ndarray] = dataclasses.field(default_factory=list)
    stopped_by: str | None = None

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
            stalled = early_stopping.should_stop(self.history, patience)
            if stop.agreed() or stalled or self.stopped_by:
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
        lr = learning_rate(state.opt_state)
        if lr is not None:  # an optimizer that holds its learning rate (optax.inject_hyperparams)
            row["train_lr"] = float(jax.device_get(lr))
        if self.validator:
            started = time.perf_counter()
            row.update(self.validator(state.params))
            row["eval_s"] += time.perf_counter() - started
        self.history.append(row)
        self.step_losses.append(step_losses)
        score = early_stopping.score(row) if self.validator else None
        # A copy: the save is asynchronous and the next epoch appends to the history.
        meta = {"history": list(self.history), "config": self.config.to_dict()}
        started = time.perf_counter()
        with jax.profiler.TraceAnnotation("checkpoint"):  # a named region of a profile
            self.checkpoints.save(epoch + 1, state, meta, score=score)
        # Time blocked on checkpoints (Orbax waits for the previous save before starting this
        # one); kept apart from `row`, which the asynchronous save may still be serialising.
        self.checkpoint_seconds.append(time.perf_counter() - started)
        self._report(row, record, step_losses, progress)
        for callback in self.callbacks:  # on the host, after the epoch's checkpoint
            if callback(dict(row), state) and not self.stopped_by:
                self.stopped_by = getattr(callback, "__name__", type(callback).__name__)
        return state

    def wait_for_last_save(self) -> None:
        """Block until the newest checkpoint is committed; the wait counts as checkpoint time."""
        started = time.perf_counter()
        self.checkpoints.wait_until_saved()
        self.checkpoint_seconds.append(time.perf_counter() - started)

    def _report(self, row, record, step_losses: np.ndarray, progress: bool) -> None:
        """The epoch's row into metrics.jsonl and TensorBoard (its steps' losses too), its line."""
        write_jsonl(self.config.stage_dir / "metrics.jsonl", self.history)
        if self.board:
            self.board.epoch(row, len(self.data.train.labels))
            first = (row["epoch"] - 1) * len(step_losses) + 1  # optimizer steps, from 1
            total = self.config.train.epochs * len(step_losses)
            self.board.steps("train/step_loss", step_losses, first, total)
        if progress:
            tqdm.write(summary_line(self.config, record, step_losses))

    def times(self, init_s: float) -> StageTimes:
        """Where this process's time went, building the start state (`init_s`) included."""
        trained = self.history[self.resumed :]
        return StageTimes(
            seconds_per_epoch=steady_state_seconds([r["seconds"] for r in trained]),
            init_s=init_s,
            compile_s=self.compiled.compile_s,
            epochs_s=sum(r.get("seconds", 0.0) for r in trained),
            eval_s=sum(r.get("eval_s", 0.0) for r in trained),
            checkpoint_s=sum(self.checkpoint_seconds),
            epochs_run_now=len(trained),
        )
