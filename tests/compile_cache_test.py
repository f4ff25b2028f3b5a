"""JAX's persistent compilation cache as the scripts use it, and what a run compiles.

Each case runs scripts/pipeline.py in a process of its own: what JAX compiles (or finds in the
cache) depends on what the process compiled before.
"""

import json
from pathlib import Path

import pytest

from aejax.engine import compile_cache
from support import SUBSET_DIR, run_script

TINY = [
    "--dataset", "fashion_mnist", "--source", "idx", "--data-dir", str(SUBSET_DIR),
    "--hidden", "32", "--latent", "16", "--train-limit", "300", "--test-limit", "100",
    "--epochs", "1", "--no-progress",
]  # fmt: skip
# Pretraining: init, two key programs, epoch (train, then test), reconstruction figure;
# fine-tuning: init, optimizer re-init after the transplant, epoch. Anything run eagerly would
# add more.
PROGRAMS = 8
KEY_PROGRAMS = 2  # the seed/epoch key programs do not depend on the model
# Programs kept whole (aejax.engine.compile_cache): each stage's init and epoch, the optimizer
# re-init after the transplant, the reconstruction figure's and the key programs; each found
# without a trace, by what it is built from (aejax.engine.untraced), its output structure kept
# beside it.
KEPT = 6 + KEY_PROGRAMS
UNTRACED = KEPT  # every one


def _pipeline(work, *extra):
    done = run_script("pipeline", *TINY, "--workdir", str(work), *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def _figures(record):
    return [record[s][k] for s in ("pretrain", "finetune") for k in ("test_loss", "train_loss")]


@pytest.fixture(scope="module")
def cached_runs(tmp_path_factory):
    """A cold run that fills a cache, the same run again, and one with another model size."""
    root = tmp_path_factory.mktemp("cache-runs")
    cache = ["--compile-cache", str(root / "cache")]
    cold = _pipeline(root / "cold", *cache)
    warm = _pipeline(root / "warm", *cache)
    other = _pipeline(root / "other", *cache, "--hidden", "24")
    return root / "cache", cold, warm, other


def test_a_stage_compiles_a_fixed_set_of_programs(cached_runs):
    cold = cached_runs[1][0]
    assert cold["programs"] == cold["compiled"] == PROGRAMS


def test_a_second_run_compiles_nothing_and_gets_the_same_results(cached_runs):
    (cold, _), (warm, stderr) = cached_runs[1:3]
    assert warm["programs"] == PROGRAMS and warm["compiled"] == 0
    assert _figures(warm) == _figures(cold)
    assert stderr == ""


def test_another_model_size_compiles_afresh(cached_runs):
    other = cached_runs[3][0]
    assert other["programs"] == PROGRAMS and other["compiled"] == PROGRAMS - KEY_PROGRAMS
    # The warm run kept nothing new; the other model size kept its own programs.
    kept = cached_runs[0] / "executables"
    # The key programs are the same for both sizes, and kept once.
    assert len(list(kept.glob("*.executable"))) == 2 * KEPT - KEY_PROGRAMS
    assert len(list(kept.glob("*.recipe"))) == 2 * UNTRACED - KEY_PROGRAMS


def test_corrupt_cache_entries_warn_in_one_line_each_and_the_run_goes_on(cached_runs, tmp_path):
    cache, (cold, _) = cached_runs[0], cached_runs[1]
    for entry in filter(Path.is_file, cache.rglob("*")):  # JAX's and the kept ones (executables/)
        entry.write_bytes(b"not a compiled program")
    record, stderr = _pipeline(tmp_path, "--compile-cache", str(cache))
    assert record["compiled"] == PROGRAMS and _figures(record) == _figures(cold)
    lines = stderr.splitlines()
    assert lines and all(line.startswith("warning: ") for line in lines)
    assert "Traceback" not in stderr


def test_an_unusable_cache_folder_is_one_warning_and_the_run_goes_on(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    record, stderr = _pipeline(tmp_path / "work", "--compile-cache", str(blocker / "cache"))
    assert record["compiled"] == PROGRAMS
    assert stderr.startswith("warning: compile cache ") and stderr.count("\n") == 1


def test_the_default_cache_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.default_dir() == tmp_path / "aejax" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert compile_cache.default_dir() == Path.home() / ".cache" / "aejax" / "jax"


def test_a_stage_recipe_holds_what_shapes_its_programs_and_nothing_else():
    """A stage's programs are found untraced by this recipe (`aejax.engine.untraced`): every
    setting that shapes them must change it, and where the run goes or how long must not."""
    from dataclasses import replace

    import flax.linen as nn
    import optax

    from aejax import FinetuneConfig, PretrainConfig
    from aejax.given import Given
    from aejax.stages import program_recipe

    none, base_config = Given(None, None, None), PretrainConfig()
    base = program_recipe(base_config, none)
    model, train = base_config.model, base_config.train
    shaping = [
        replace(base_config, model=replace(model, hidden=64)),
        replace(base_config, model=replace(model, dtype="bfloat16")),
        replace(base_config, objective=replace(base_config.objective, loss="bce")),
        replace(base_config, train=replace(train, lr=3e-4)),
        replace(base_config, train=replace(train, batch_size=50)),
    ]
    recipes = {base, *(program_recipe(c, none) for c in shaping)}
    assert None not in recipes and len(recipes) == 1 + len(shaping)
    elsewhere = replace(
        base_config,
        workdir="/elsewhere",
        train=replace(train, epochs=3, seed=7, keep_checkpoints=1),
    )
    assert program_recipe(elsewhere, none) == base
    assert program_recipe(FinetuneConfig(), none) not in (None, base)
    for given in (
        Given(nn.Dense(3), None, None),
        Given(None, optax.sgd(0.1), None),
        Given(None, None, lambda *a: {}),
    ):
        assert program_recipe(base_config, given) is None  # their code is not aejax's
    finetune = FinetuneConfig()
    for augment, untraced in (("latent-mix:1", False), ("shift:1", True), ("none", True)):
        config = replace(finetune, augmentation=replace(finetune.augmentation, augment=augment))
        # A latent kind generates with a saved autoencoder, whose settings are not in the config.
        assert (program_recipe(config, none) is not None) == untraced
