"""Helpers shared by the tests: small configs, hand-made IDX files, and running the scripts.

Real data comes from `SUBSET_DIR`, the first 2000 train / 500 test Fashion-MNIST images committed
with the tests, so the suite needs no system dataset. `FASHION_DIR` is the full set that a few
tests use when the machine has it (Debian's dataset-fashion-mnist, installed by scripts/setup.sh).
"""

import contextlib
import gzip
import io
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np

from aejax.config import DataConfig, FinetuneConfig, ModelConfig, PretrainConfig, TrainConfig
from aejax.run.workdir_lock import LOCK_NAME

REPO = Path(__file__).resolve().parents[1]
SUBSET_DIR = REPO / "tests" / "data" / "fashion_mnist_subset"
SUBSET_SIZES = (2000, 500)  # train, test
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
STAGES = {"pretrain": PretrainConfig, "finetune": FinetuneConfig}


def subset_data_config(**limits) -> DataConfig:
    """The committed Fashion-MNIST subset, read from its IDX files."""
    return DataConfig(dataset="fashion_mnist", source="idx", data_dir=str(SUBSET_DIR), **limits)


def tiny_config(stage: str, workdir, epochs: int = 2, **train) -> PretrainConfig | FinetuneConfig:
    """A small but real configuration of `stage` ("pretrain" or "finetune") for stage tests."""
    return STAGES[stage](
        workdir=str(workdir),
        model=ModelConfig(hidden=32, latent=16),
        data=subset_data_config(),
        train=TrainConfig(**{"epochs": epochs, "batch_size": 100, **train}),
    )


def write_idx(path: Path, array: np.ndarray, magic: int | None = None, gz: bool = False) -> Path:
    """Write `array` (uint8) as an IDX file; `magic` overrides the header for broken files."""
    array = np.asarray(array, np.uint8)
    magic = magic if magic is not None else (0x0800 | array.ndim)
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_idx_dataset(folder: Path, n_train=20, n_test=10, side=28, gz=False, seed=0) -> dict:
    """Four hand-made IDX files in MNIST naming; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, array in arrays.items():
        write_idx(folder / name, array, gz=gz)
    return arrays


def _script_command(name: str, args) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / f"{name}.py"), *args]


# Small real runs for the tests of refusals and faults: the committed Fashion-MNIST subset.
TINY_RUN = ["--hidden", "32", "--latent", "16", "--train-limit", "1000", "--test-limit", "200"]


def tiny_run_flags() -> list[str]:
    """The flags of a small real run on the committed subset, quiet."""
    return ["--dataset", "fashion_mnist", "--data-dir", str(SUBSET_DIR), *TINY_RUN, "--no-progress"]


def one_trained_epoch(workdir: Path) -> Path:
    """`workdir` holding one finished pretrain epoch of a tiny real run (the results that must
    survive what a test does to them)."""
    result = run_script("pretrain", *tiny_run_flags(), "--epochs", "1", "--workdir", str(workdir))
    assert result.returncode == 0, result.stderr
    return workdir


def run_script(
    name: str, *args: str, timeout: int = 300, file_size_limit: int | None = None
) -> subprocess.CompletedProcess:
    """Run scripts/<name>.py as a user would, capturing its output; `file_size_limit`: the
    largest file it may write, in bytes (``ulimit -f``: a disk that fills up)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    command = _script_command(name, args)
    if file_size_limit:  # bash's ulimit counts kB; no preexec_fn, which would fork a JAX process
        limit = f'ulimit -f {file_size_limit // 1024} && exec "$@"'
        command = ["bash", "-c", limit, "bash", *command]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def run_script_async(name: str, *args: str) -> subprocess.Popen:
    """Start scripts/<name>.py without waiting (for kill and signal tests)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen(
        _script_command(name, args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def run_script_here(name: str, *args: str) -> subprocess.CompletedProcess:
    """Run scripts/<name>.py in this process (same code path, no start-up cost): for refusals."""
    path = REPO / "scripts" / f"{name}.py"
    out, err = io.StringIO(), io.StringIO()
    saved_argv, sys.argv = sys.argv, [str(path), *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
    finally:
        sys.argv = saved_argv
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def saved_params(stage_dir: Path):
    """The params of a stage's newest checkpoint, as saved (numpy arrays)."""
    import jax
    import orbax.checkpoint as ocp

    from aejax.run import checkpoint

    checkpoints_dir = Path(stage_dir) / "checkpoints"
    epoch = checkpoint.latest_epoch(checkpoints_dir)
    assert epoch is not None, f"no checkpoint in {checkpoints_dir}"
    path = checkpoints_dir.absolute() / str(epoch) / "state"
    with ocp.StandardCheckpointer() as restorer:
        # Onto this process's first device, whatever devices or processes wrote it.
        here = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        target = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=here),
            restorer.metadata(path).item_metadata.tree,
        )
        return restorer.restore(path, target)["params"]


def snapshot(folder: Path) -> dict:
    """Every file below `folder` with its size and modification time: to prove nothing changed.

    The workdir's lock file aside: every run that starts a stage records itself in it.
    """
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


def drawn(path: Path) -> bool:
    """True when `path` is a PNG holding a drawing: at least 100 x 100 pixels, many colours, and
    more than a sliver of it not background (an empty or single-colour figure is not drawn)."""
    import matplotlib.image

    image = matplotlib.image.imread(path)[..., :3]
    height, width = image.shape[:2]
    background = np.all(image == image[0, 0], axis=-1)
    colours = len(np.unique(image.reshape(-1, 3), axis=0))
    return height >= 100 and width >= 100 and colours > 20 and 0.01 < 1 - background.mean()
