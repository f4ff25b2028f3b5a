"""The two stages of the pipeline: `pretrain` (autoencoder) and `finetune` (classifier).

Each stage writes into ``WORKDIR/<stage>/``: ``checkpoints/`` (Orbax, one per epoch),
``config.json``, ``metrics.jsonl`` (one line per epoch), ``metrics.json`` and figures. Re-running a
stage resumes from its newest checkpoint (`aejax.stage_loop` says in which order a stage starts).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax import generation, objectives, observe, plots
from aejax.config import FinetuneConfig, PretrainConfig
from aejax.data import Dataset, load_dataset, normalize
from aejax.errors import UserError
from aejax.evaluation import load_stage, stage_model
from aejax.keys import INIT_STREAM, stage_key
from aejax.models import warn_if_slow_dtype
from aejax.optim import make_optimizer
from aejax.parallel import data_mesh
from aejax.splits import hold_out
from aejax.stage_loop import (
    StageResult,
    StageStart,
    StageTask,
    resume_epoch,
    train_stage,
)
from aejax.train import create_state
from aejax.transplant import load_pretrained_encoder, transplant_encoder
from aejax.workdir_lock import workdir_lock

__all__ = ["PipelineResult", "StageResult", "finetune", "pretrain", "run_pipeline"]


@dataclasses.dataclass
class PipelineResult:
    """Both stages' results."""

    pretrain: StageResult
    finetune: StageResult


def pretrain(
    config: PretrainConfig,
    data: Dataset | None = None,
    progress: bool = True,
    overwrite: bool = False,
    devices: int | None = None,
    seen: observe.Observe = observe.DEFAULT,
) -> StageResult:
    """Train the autoencoder (MSE or BCE, optionally denoising), resuming if possible.

    `overwrite` discards an earlier run in that folder (only once the data has loaded).
    `devices` > 1 trains data-parallel over that many devices (`aejax.parallel`); `seen` asks
    for TensorBoard events and a profiler trace (`aejax.observe`).
    """
    _require_config(config, PretrainConfig)
    mesh = data_mesh(devices, config.train.batch_size)
    warn_if_slow_dtype(config.model.dtype)
    data = data if data is not None else load_dataset(config.data)
    started = time.perf_counter()
    model = stage_model(config, data.input_dim)
    tx = optax.adam(config.train.lr)
    state = create_state(model, data.input_dim, tx, stage_key(config, INIT_STREAM, mesh), mesh)
    init_s = time.perf_counter() - started
    start = StageStart(state, resume_epoch(config, overwrite), overwrite, init_s, mesh)
    task = StageTask(
        objectives.pretraining_metrics(model, config.objective),
        figures=functools.partial(_save_reconstruction_figure, config, model, data=data),
    )
    return train_stage(config, data, start, task, progress, seen=seen)


def finetune(
    config: FinetuneConfig,
    data: Dataset | None = None,
    progress: bool = True,
    overwrite: bool = False,
    devices: int | None = None,
    seen: observe.Observe = observe.DEFAULT,
) -> StageResult:
    """Train encoder + Dense head with cross-entropy, from the pretrained encoder or scratch.

    `overwrite` discards an earlier fine-tuning run (only once data and encoder have loaded).
    `devices` > 1 trains data-parallel over that many devices (`aejax.parallel`); `seen` asks
    for TensorBoard events and a profiler trace (`aejax.observe`).
    """
    _require_config(config, FinetuneConfig)
    mesh = data_mesh(devices, config.train.batch_size)
    warn_if_slow_dtype(config.model.dtype)
    data = data if data is not None else load_dataset(config.data)
    if data.num_classes > config.model.num_classes:
        raise UserError(
            f"{data.name} has {data.num_classes} classes but the classifier has "
            f"{config.model.num_classes}; set num_classes to {data.num_classes}",
            settings=("num_classes",),
        )
    started = time.perf_counter()
    model = stage_model(config, data.input_dim)
    tx = make_optimizer(config.train.lr, config.transfer)
    state = create_state(model, data.input_dim, tx, stage_key(config, INIT_STREAM, mesh), mesh)
    resume = resume_epoch(config, overwrite)
    if resume is None and config.transfer.encoder == "pretrained":
        encoder = load_pretrained_encoder(config.encoder_source_dir, state.params)
        params = transplant_encoder(state.params, encoder)
        state = state.replace(params=params, opt_state=jax.jit(tx.init)(params))
    val = None
    if config.early_stopping.val_split:
        data, val = hold_out(data, config.early_stopping.val_split, config.train.seed)
    augmentation = _augmentation(config, data)
    start = StageStart(state, resume, overwrite, time.perf_counter() - started, mesh)
    task = StageTask(objectives.classification_metrics(model.apply), augmentation=augmentation)
    return train_stage(config, data, start, task, progress, val, seen)


def run_pipeline(
    pretrain_config: PretrainConfig,
    finetune_config: FinetuneConfig,
    data: Dataset | None = None,
    progress: bool = True,
    overwrite: bool = False,
    devices: int | None = None,
    seen: observe.Observe = observe.DEFAULT,
) -> PipelineResult:
    """Pretrain, transplant, fine-tune in this process, the data loaded once.

    Each stage resumes exactly as `pretrain` and `finetune` do when run one after the other;
    `overwrite` discards both stages' earlier runs.
    """
    if pretrain_config.data != finetune_config.data:
        raise ValueError("both stages of a pipeline train on the same data config")
    data = data if data is not None else load_dataset(pretrain_config.data)
    # Held across both stages, so no other run can slip in between them.
    with workdir_lock(pretrain_config.workdir), workdir_lock(finetune_config.workdir):
        first = pretrain(pretrain_config, data, progress, overwrite, devices, seen)
        second = finetune(finetune_config, data, progress, overwrite, devices, seen)
        return PipelineResult(first, second)


def _augmentation(config: FinetuneConfig, data: Dataset):
    """``(augment, generator)`` for the config's augmentation of `data`'s training split, or None.

    Latent kinds generate with the pretrained autoencoder, decoder included, restored from the
    pretrain stage folder; its per-class code spread is fitted on this training split only.
    """
    spec = config.augmentation
    side = math.isqrt(data.input_dim)
    if spec.kind == "none":
        return None
    if side * side != data.input_dim:
        raise UserError(f"augmenting needs square images, not {data.input_dim} pixels")
    if spec.kind == "shift":
        return generation.make_augment(spec, side=side), None
    saved = load_stage(config.encoder_source_dir)
    if not isinstance(saved.config, PretrainConfig):
        raise UserError(
            f"{config.encoder_source_dir} is not a pretrain stage folder; {spec.kind} generates "
            "with the pretrained autoencoder",
            settings=("pretrained_dir",),
        )
    fit = jax.jit(generation.fit_generator, static_argnums=(0, 4))
    generator = fit(saved.model, saved.params, *data.train, config.model.num_classes)
    return generation.make_augment(spec, saved.model, side), generator


def _save_reconstruction_figure(config, model, params, data: Dataset, count: int = 10):
    @jax.jit  # one program, not one compile per Flax op
    def originals_and_reconstructions(params, images):
        originals = normalize(images)
        return originals, objectives.reconstruct(model.apply, params, originals, config.objective)

    # Host copies: a program on the (maybe multi-process) mesh would need every process here.
    params = jax.device_get(params)
    originals, reconstructions = originals_and_reconstructions(params, data.test_images[:count])
    plots.save_reconstructions(
        np.asarray(originals),
        np.asarray(reconstructions),
        config.stage_dir / "reconstructions.png",
        f"{data.name}: test images (top) and reconstructions (bottom)",
    )
    if model.variational:
        _save_vae_figures(config, model, params, data)


def _save_vae_figures(config, model, params, data: Dataset, count: int = 10):
    """A VAE's decoded samples from the prior, and the decoded path between two test images of
    different classes (their mean codes, linearly interpolated)."""
    encode, decode = generation.coder(model)

    @jax.jit
    def samples_and_path(params, ends, key):
        prior = decode(params, jax.random.normal(key, (2 * count, model.latent)))
        codes = encode(params, ends)
        t = jnp.linspace(0.0, 1.0, count)[:, None]
        return prior, decode(params, (1.0 - t) * codes[0] + t * codes[1])

    labels = data.test_labels
    other = int(np.argmax(labels != labels[0]))  # the first test image of another class
    ends = data.test_images[np.array([0, other])]
    key = jax.random.key(config.train.seed)
    prior, path = map(np.asarray, samples_and_path(params, ends, key))
    stage_dir, name = config.stage_dir, data.name
    rows = {"z ~ N(0, I)": prior[:count], "": prior[count:]}
    plots.save_image_rows(rows, stage_dir / "samples.png", f"{name}: VAE samples from the prior")
    plots.save_image_rows(
        {"path": path}, stage_dir / "interpolation.png", f"{name}: decoded path between two codes"
    )


def _require_config(config, kind: type) -> None:
    if not isinstance(config, kind):
        raise TypeError(f"needs a {kind.__name__}, got {type(config).__name__}")
