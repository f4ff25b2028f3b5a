"""The two stages of the pipeline: `pretrain` (autoencoder) and `finetune` (classifier).

Each stage writes into ``WORKDIR/<stage>/``: ``checkpoints/`` (Orbax, one per epoch),
``config.json``, ``metrics.jsonl`` (one line per epoch), ``metrics.json`` and figures. Re-running a
stage resumes from its newest checkpoint. Resume order: this stage's checkpoint -> (fine-tuning
only) the pretrained encoder -> fresh initialisation.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from aejax import checkpoint, early_stopping, objectives, plots
from aejax.configs import StageConfig
from aejax.data import Dataset, load_dataset, normalize
from aejax.errors import UserError
from aejax.interrupt import TrainingInterrupted, stop_on_signal
from aejax.models import make_autoencoder, make_classifier
from aejax.optim import make_optimizer
from aejax.splits import hold_out
from aejax.train import (
    EpochRecord,
    TrainState,
    classification_metrics,
    compile_stage,
    create_state,
    run_epoch,
    steady_state_seconds,
)
from aejax.transplant import load_pretrained_encoder, transplant_encoder
from aejax.workdir import prepare_stage_dir, remove_stage_outputs, write_json, write_jsonl

INIT_STREAM, EPOCH_STREAM = 0, 1  # independent random streams derived from the seed


@dataclasses.dataclass
class StageResult:
    """Final state, per-epoch history and summary metrics of a finished stage."""

    state: TrainState
    history: list[dict[str, Any]]
    metrics: dict[str, Any]


def pretrain(
    config: StageConfig,
    data: Dataset | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> StageResult:
    """Train the autoencoder (MSE or BCE, optionally denoising), resuming if possible.

    `overwrite` discards an earlier run in that folder (only once the data has loaded).
    """
    _require_stage(config, "pretrain")
    data = data if data is not None else load_dataset(config.data)
    logits = objectives.uses_logits(config.objective)
    model = make_autoencoder(config.model, data.input_dim, logits=logits)
    tx = optax.adam(config.train.lr)
    state = create_state(model, data.input_dim, tx, _key(config, INIT_STREAM))
    if overwrite:
        remove_stage_outputs(config)
    metrics_fn = objectives.reconstruction_metrics(model.apply, config.objective)
    result = _run_stage(config, data, state, metrics_fn, progress)
    _save_reconstruction_figure(config, model, result.state.params, data)
    return result


def finetune(
    config: StageConfig,
    data: Dataset | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> StageResult:
    """Train encoder + Dense head with cross-entropy, from the pretrained encoder or scratch.

    `overwrite` discards an earlier fine-tuning run (only once data and encoder have loaded).
    """
    _require_stage(config, "finetune")
    data = data if data is not None else load_dataset(config.data)
    if data.num_classes > config.model.num_classes:
        raise UserError(
            f"{data.name} has {data.num_classes} classes but the classifier has "
            f"{config.model.num_classes}; pass --num-classes {data.num_classes}"
        )
    model = make_classifier(config.model)
    tx = make_optimizer(config.train.lr, config.finetune)
    fresh = create_state(model, data.input_dim, tx, _key(config, INIT_STREAM))
    resuming = checkpoint.latest_epoch(config.stage_dir / "checkpoints") is not None
    pretrained = config.finetune.encoder == "pretrained"
    if pretrained and (overwrite or not resuming):  # a resume needs no pretrained encoder
        encoder = load_pretrained_encoder(config.encoder_source_dir, fresh.params)
        fresh = fresh.replace(params=transplant_encoder(fresh.params, encoder))
        fresh = fresh.replace(opt_state=tx.init(fresh.params))
    if overwrite:
        remove_stage_outputs(config)
    val_arrays = None
    if config.finetune.val_split:
        data, val_arrays = hold_out(data, config.finetune.val_split, config.train.seed)
    metrics_fn = classification_metrics(model.apply)
    return _run_stage(config, data, fresh, metrics_fn, progress, val_arrays)


def _run_stage(
    config: StageConfig, data: Dataset, state, metrics_fn, progress: bool, val_arrays=None
):
    """Resume or start, train the remaining epochs with a checkpoint each, write all outputs.

    With `val_arrays`, every epoch is also scored on them; training stops early after
    ``config.finetune.patience`` epochs without improvement and the best epoch is restored.
    """
    started = time.perf_counter()
    if config.train.batch_size > len(data.train_labels):
        raise UserError(
            f"batch size {config.train.batch_size} exceeds the {len(data.train_labels)} "
            "training examples"
        )
    stage_dir = prepare_stage_dir(config, state)
    # The dataset goes to the device once; every epoch gathers its batches there.
    train_arrays = (jax.device_put(data.train_images), jax.device_put(data.train_labels))
    test_arrays = (jax.device_put(data.test_images), jax.device_put(data.test_labels))
    validator = None
    if val_arrays is not None:
        validator = early_stopping.Validator(
            metrics_fn, state.params, val_arrays, config.train.batch_size
        )
    keep = config.train.keep_checkpoints
    with checkpoint.StageCheckpoints(
        stage_dir / "checkpoints", keep, track_best=bool(validator)
    ) as ckpt:
        state, history, records, compile_s, best = _train_with_checkpoints(
            config, ckpt, state, metrics_fn, (train_arrays, test_arrays), progress, validator
        )
    if not history:
        raise UserError(f"{stage_dir} trained no epoch")
    metrics = _final_metrics(config, data, history, records, compile_s, started)
    if best is not None:
        metrics.update(best, num_val=len(val_arrays[1]))
    write_json(stage_dir / "metrics.json", metrics)
    plots.save_curves(history, stage_dir / "curves.png", f"{config.stage}: {data.name}")
    return StageResult(state, history, metrics)


def _train_with_checkpoints(config, ckpt, state, metrics_fn, arrays, progress, validator):
    """Resume from `ckpt`, compile, train until done, stopped or stalled; restore the best epoch.

    Returns the state, the whole history, this process's epoch records, the compile time and
    (with a validator) the best epoch's figures. A signal ends it with `TrainingInterrupted`.
    """
    state, history = _resume(ckpt, state)
    train_arrays, test_arrays = arrays
    key = _epoch_key(config, 0)
    bs = config.train.batch_size
    compiled = compile_stage(metrics_fn, state, train_arrays, test_arrays, bs, key)
    with stop_on_signal() as stop:
        state, records = _train_epochs(
            config, ckpt, compiled, state, history, arrays, progress, stop, validator
        )
    if stop.requested:
        raise TrainingInterrupted(
            f"interrupted: {config.stage} stopped after epoch {len(history)}, checkpoint in "
            f"{ckpt.directory}; run the same command again to resume",
            stop.signum,
        )
    best = None
    if validator and history:
        state, best = early_stopping.restore_best(
            ckpt, state, compiled.evaluate, test_arrays, history
        )
    return state, history, records, compiled.compile_s, best


def _train_epochs(config, ckpt, compiled, state, history, arrays, progress, stop, validator):
    """Train from len(history) to config.train.epochs, checkpointing after every epoch.

    Stops early (after checkpointing) when `stop` was requested by a signal, or when the
    validation score has not improved for ``config.finetune.patience`` epochs.
    """
    stage_dir = config.stage_dir
    records: list[EpochRecord] = []
    bar = tqdm(
        total=config.train.epochs,
        initial=len(history),
        desc=config.stage,
        unit="epoch",
        disable=not progress,
        dynamic_ncols=True,
    )
    for epoch in range(len(history), config.train.epochs):
        if stop.requested or early_stopping.should_stop(history, config.finetune.patience):
            break
        key = _epoch_key(config, epoch)
        # The previous epoch's checkpoint is written in the background; let it finish first so
        # it does not share the cores with (and slow down) the epoch being timed.
        ckpt.wait_until_saved()
        state, record, step_losses = run_epoch(compiled, state, *arrays, key, epoch + 1)
        records.append(record)
        history.append({**record.as_dict(), **(validator(state.params) if validator else {})})
        score = early_stopping.score(history[-1]) if validator else None
        ckpt.save(epoch + 1, state, {"history": history, "config": config.to_dict()}, score=score)
        write_jsonl(stage_dir / "metrics.jsonl", history)
        bar.set_postfix(loss=f"{record.train['loss']:.4f}")
        bar.update(1)
        if progress:
            tqdm.write(_summary_line(config, record, step_losses))
    bar.close()
    return state, records


def _resume(ckpt: checkpoint.StageCheckpoints, state) -> tuple[Any, list[dict[str, Any]]]:
    """The newest checkpointed state and its history, or `state` and an empty history."""
    epoch = ckpt.latest_epoch()
    if epoch is None:
        return state, []
    restored, meta = ckpt.restore(epoch, state)
    tqdm.write(f"resuming from {ckpt.directory}/{epoch} (epoch {epoch} done)")
    return restored, list(meta["history"])


def _final_metrics(config, data, history, records, compile_s, started) -> dict[str, Any]:
    last = history[-1]
    seconds = steady_state_seconds(records)
    metrics = {
        "stage": config.stage,
        "dataset": data.name,
        "source": data.source,
        "num_train": len(data.train_labels),
        "num_test": len(data.test_labels),
        "epochs": last["epoch"],
        "batch_size": config.train.batch_size,
        "lr": config.train.lr,
        "seed": config.train.seed,
        "train_loss": last["train_loss"],
        "test_loss": last["test_loss"],
        "seconds_per_epoch": seconds,
        "compile_s": compile_s,
        "wall_s": time.perf_counter() - started,
        "examples_per_s": len(data.train_labels) / seconds if seconds else None,
        "epochs_run_now": len(records),
        "backend": jax.default_backend(),
    }
    if config.stage == "pretrain":
        metrics[f"test_{config.objective.loss}"] = last["test_loss"]
    else:
        metrics["test_accuracy"] = last["test_accuracy"]
    return metrics


def _summary_line(config: StageConfig, record: EpochRecord, step_losses: np.ndarray) -> str:
    test = "  ".join(f"test_{k} {v:.4f}" for k, v in record.test.items() if k != "count")
    return (
        f"{config.stage} epoch {record.epoch}/{config.train.epochs}  "
        f"train_loss {record.train['loss']:.4f} (last step {float(step_losses[-1]):.4f})  "
        f"{test}  {record.seconds:.2f}s"
    )


def _save_reconstruction_figure(config: StageConfig, model, params, data: Dataset, count: int = 10):
    originals = normalize(jnp.asarray(data.test_images[:count]))
    reconstructions = objectives.reconstruct(model.apply, params, originals, config.objective)
    plots.save_reconstructions(
        np.asarray(originals),
        np.asarray(reconstructions),
        config.stage_dir / "reconstructions.png",
        f"{data.name}: test images (top) and reconstructions (bottom)",
    )


def _key(config: StageConfig, stream: int):
    return jax.random.fold_in(jax.random.key(config.train.seed), stream)


def _epoch_key(config: StageConfig, epoch: int):
    """A pure function of seed and epoch, so a resumed run replays the same data order."""
    return jax.random.fold_in(_key(config, EPOCH_STREAM), epoch)


def _require_stage(config: StageConfig, stage: str) -> None:
    if config.stage != stage:
        raise ValueError(f"{stage}() needs a {stage} config, got stage={config.stage!r}")
