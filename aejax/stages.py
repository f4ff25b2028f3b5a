"""The two stages of the pipeline: `pretrain` (autoencoder) and `finetune` (classifier).

Each stage writes into ``WORKDIR/<stage>/``: ``checkpoints/`` (Orbax, one per epoch),
``config.json``, ``metrics.jsonl`` (one line per epoch), ``metrics.json`` and figures. Re-running a
stage resumes from its newest checkpoint (`aejax.run.resume` says in which order a stage starts).

Every stage, and the pipeline, takes `options` (`aejax.RunOptions`: progress, overwrite, devices,
observe), and keywords that override one of them, such as ``progress=False``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.config import FinetuneConfig, PretrainConfig
from aejax.contracts import Augmentation, MetricsFn
from aejax.data.datasets import Dataset, load_dataset, normalize
from aejax.data.splits import hold_out
from aejax.engine.keys import INIT_STREAM, stage_key
from aejax.engine.parallel import data_mesh
from aejax.engine.train import compile_on, create_state
from aejax.errors import UserError
from aejax.figures import plots
from aejax.given import Given, PerStage, for_stage
from aejax.model import generation, objectives
from aejax.model.models import warn_if_slow_dtype
from aejax.model.optim import make_optimizer
from aejax.model.tasks import FINETUNING, PRETRAINING, stage_model
from aejax.run.options import RunOptions
from aejax.run.resume import StageStart
from aejax.run.saved_stage import load_stage
from aejax.run.stage_loop import StageResult, StageTask, train_stage
from aejax.run.stage_run import Callback
from aejax.run.workdir_lock import workdir_lock

__all__ = ["PipelineResult", "RunOptions", "StageResult", "finetune", "pretrain", "run_pipeline"]


@dataclasses.dataclass
class PipelineResult:
    """Both stages' results."""

    pretrain: StageResult
    finetune: StageResult


def pretrain(
    config: PretrainConfig,
    data: Dataset | None = None,
    options: RunOptions | None = None,
    *,
    model: nn.Module | None = None,
    optimizer: optax.GradientTransformation | None = None,
    objective: MetricsFn | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> StageResult:
    """Train the autoencoder (MSE or BCE, optionally denoising), resuming if possible; your
    `model`, `optimizer` and `objective` replace those the config describes."""
    config, options, mesh, data = _inputs(config, PretrainConfig, data, options, overrides)
    given = Given.checked(model, optimizer, objective, callbacks, config)
    started = time.perf_counter()
    tx = optimizer or optax.adam(config.train.lr)
    recipe = program_recipe(config, given)
    model, state = _fresh_state(config, data, tx, mesh, model, recipe)
    components = given.components(model, state)
    start = StageStart(state, None, time.perf_counter() - started, mesh, components, recipe)
    kind = PRETRAINING if objective is None else dataclasses.replace(PRETRAINING, report=_no_keys)
    task = StageTask(
        kind,
        objective or PRETRAINING.metrics(config, model),
        figures=functools.partial(
            _save_reconstruction_figure, config, model, data=data, recipe=recipe
        ),
        callbacks=tuple(callbacks),
    )
    return train_stage(config, data, start, task, options)


def finetune(
    config: FinetuneConfig,
    data: Dataset | None = None,
    options: RunOptions | None = None,
    *,
    model: nn.Module | None = None,
    optimizer: optax.GradientTransformation | None = None,
    objective: MetricsFn | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> StageResult:
    """Train encoder + head with cross-entropy, from the pretrained encoder or scratch; your
    `model`, `optimizer` (the transfer mode still applies to it) and `objective` replace those
    the config describes."""
    config, options, mesh, data = _inputs(config, FinetuneConfig, data, options, overrides)
    given = Given.checked(model, optimizer, objective, callbacks, config)
    _require_classes(config, data)
    started = time.perf_counter()
    tx = make_optimizer(config.train.lr, config.transfer, optimizer)
    recipe = program_recipe(config, given)
    model, state = _fresh_state(config, data, tx, mesh, model, recipe)
    source = config.encoder_source_dir if config.transfer.encoder == "pretrained" else None
    val = None
    if config.early_stopping.val_split:
        data, val = hold_out(data, config.early_stopping.val_split, config.train.seed)
    augmentation = _augmentation(config, data)
    components = given.components(model, state)
    start = StageStart(state, source, time.perf_counter() - started, mesh, components, recipe)
    metrics_fn = objective or FINETUNING.metrics(config, model)
    kind = FINETUNING if objective is None else dataclasses.replace(FINETUNING, report=_no_keys)
    task = StageTask(kind, metrics_fn, None, augmentation, tuple(callbacks))
    return train_stage(config, data, start, task, options, val)


def run_pipeline(
    pretrain_config: PretrainConfig,
    finetune_config: FinetuneConfig,
    data: Dataset | None = None,
    options: RunOptions | None = None,
    *,
    model: PerStage[nn.Module] | None = None,
    optimizer: optax.GradientTransformation | PerStage[optax.GradientTransformation] | None = None,
    objective: PerStage[MetricsFn] | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> PipelineResult:
    """Pretrain, transplant, fine-tune in this process, the data loaded once.

    Each stage resumes exactly as `pretrain` and `finetune` do when run one after the other;
    ``overwrite`` discards both stages' earlier runs; `callbacks` see both stages' epochs.
    `model` and `objective` are stage-specific: ``{"pretrain": ..., "finetune": ...}``, either
    stage left out keeps its built-in one; `optimizer` is one transformation for both stages
    (each with its own state) or such a mapping.
    """
    if pretrain_config.data != finetune_config.data:
        raise ValueError("both stages of a pipeline train on the same data config")
    options = RunOptions.resolve(options, overrides)
    pieces = {"model": model, "optimizer": optimizer, "objective": objective}
    shares = {stage: for_stage(stage, pieces) for stage in ("pretrain", "finetune")}
    data = data if data is not None else load_dataset(pretrain_config.data)
    # Held across both stages, so no other run can slip in between them.
    with workdir_lock(pretrain_config.workdir), workdir_lock(finetune_config.workdir):
        first = pretrain(pretrain_config, data, options, callbacks=callbacks, **shares["pretrain"])
        second = finetune(finetune_config, data, options, callbacks=callbacks, **shares["finetune"])
        return PipelineResult(first, second)


def _augmentation(config: FinetuneConfig, data: Dataset):
    """The `Augmentation` for the config's augmentation of `data`'s training split, or None.

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
        return Augmentation(generation.make_augment(spec, side=side))
    saved = load_stage(config.encoder_source_dir)
    if not isinstance(saved.config, PretrainConfig):
        raise UserError(
            f"{config.encoder_source_dir} is not a pretrain stage folder; {spec.kind} generates "
            "with the pretrained autoencoder",
            settings=("pretrained_dir",),
        )
    fit = jax.jit(generation.fit_generator, static_argnums=(0, 4))
    generator = fit(saved.model, saved.params, *data.train, config.model.num_classes)
    return Augmentation(generation.make_augment(spec, saved.model, side), generator)


def _save_reconstruction_figure(
    config, model, params, data: Dataset, count: int = 10, recipe: str | None = None
):
    def originals_and_reconstructions(params, images):
        originals = normalize(images)
        return originals, objectives.reconstruct(model.apply, params, originals, config.objective)

    # Host copies: a program on the (maybe multi-process) mesh would need every process here.
    # One program, not one compile per Flax op; kept, and found untraced by a warm run.
    args = (jax.device_get(params), data.test_images[:count])
    recipe = recipe and f"{recipe}/reconstructions"
    program = compile_on(originals_and_reconstructions, args, recipe=recipe)
    originals, reconstructions = program(*args)
    plots.save_reconstructions(
        np.asarray(originals),
        np.asarray(reconstructions),
        config.stage_dir / "reconstructions.png",
        f"{data.name}: test images (top) and reconstructions (bottom)",
    )
    if getattr(model, "variational", False):
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


def _inputs(config, kind: type, data: Dataset | None, options: RunOptions | None, overrides):
    """A stage's config, run options, device mesh and data (loaded unless given), each checked.

    The config records the data config that loaded `data`, where there is one (data loaded by
    `aejax.load_dataset`), so that the stage folder finds its data again.
    """
    if not isinstance(config, kind):
        raise TypeError(f"needs a {kind.__name__}, got {type(config).__name__}")
    options = RunOptions.resolve(options, overrides)
    mesh = data_mesh(options.devices, config.train.batch_size)
    warn_if_slow_dtype(config.model.dtype)
    data = data if data is not None else load_dataset(config.data)
    if data.loaded_with is not None:
        config = config.replace(data=data.loaded_with)
    return config, options, mesh, data


def program_recipe(config, given: Given) -> str | None:
    """What a stage's programs are built from (`aejax.engine.untraced`): aejax's own code and the
    config's fields that shape them. None when the caller gave a model, optimizer or objective
    (their code is not aejax's), or when a latent augmentation generates with a saved
    autoencoder (whose settings this config does not hold): such programs are traced to be keyed."""
    if any(piece is not None for piece in (given.model, given.optimizer, given.objective)):
        return None
    augmentation = getattr(config, "augmentation", None)
    if augmentation is not None and augmentation.kind not in ("none", "shift"):
        return None
    shaping = config.to_dict()
    # The data reaches the programs as arguments (their shapes are in the key); the rest of
    # these only decide how many times, from where and into where the programs run.
    for field in ("workdir", "data", "pretrained_dir"):
        shaping.pop(field, None)
    for field in ("epochs", "seed", "keep_checkpoints"):
        shaping["train"].pop(field)
    return json.dumps(shaping, sort_keys=True)


def _no_keys(config, last: dict[str, Any]) -> dict[str, Any]:
    """A given objective's report: its test loss, which every stage reports, and no more."""
    return {}


def _require_classes(config: FinetuneConfig, data: Dataset) -> None:
    if data.num_classes > config.model.num_classes:
        raise UserError(
            f"{data.name} has {data.num_classes} classes but the classifier has "
            f"{config.model.num_classes}; set num_classes to {data.num_classes}",
            settings=("num_classes",),
        )


def _fresh_state(
    config, data: Dataset, tx: optax.GradientTransformation, mesh, model=None, recipe=None
):
    """The stage's model (`model`, or the one its config describes), and its freshly initialised
    state (step 3 of `aejax.run.resume`)."""
    model = model or stage_model(config, data.input_dim)
    key = stage_key(config, INIT_STREAM, mesh)
    return model, create_state(model, data.input_dim, tx, key, mesh, recipe)
