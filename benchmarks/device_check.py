"""Device check: what aejax does on this machine's GPU or TPU, in one command of a few minutes.

    python benchmarks/device_check.py --dataset mnist --data-dir /path/to/idx

``--data-dir``: the four IDX files (an offline machine must be handed them; default: aejax's usual
lookup). ``--tiny``: a CPU smoke run (1000/200 examples, 32-16 model, 2 epochs), e.g.

    JAX_NUM_CPU_DEVICES=2 XLA_FLAGS=--xla_backend_optimization_level=0 \\
        python benchmarks/device_check.py --tiny --data-dir tests/data/fashion_mnist_subset

(compiling is most of a tiny run: LLVM at -O0 halves it). Each measurement trains ``--epochs``
epochs (default 3; steady state: the median of those after the first). Writes
``results/<name>.json`` and ``.md`` (name: ``device_check-<backend>``) with

- ``environment``: backend, versions, devices, XLA_FLAGS in effect;
- ``autoencoder_dtypes``: the autoencoder's steady-state epoch and test loss, float32 and bfloat16;
- ``pipeline``: `aejax.run_pipeline`'s wall time (data loaded) and final test accuracy;
- ``multi_seed``: 8 autoencoders as one vmapped program (`aejax.research.multi_seed`) against 1:
  ``ratio_vs_loop`` = 8 seeds' time / (8 x 1 seed's time), below 1 when vmapping pays;
- ``determinism``: SHA-256 of the params two processes train, ``--xla_gpu_deterministic_ops=true``;
- ``data_parallel``: the float32 epoch on 1, 2, 4, ... devices (`aejax.engine.parallel.data_mesh`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import distributions
from pathlib import Path

import jax
import jax.numpy as jnp
import machine
import numpy as np
import optax
import results

import aejax
from aejax.engine import epochs as stage_epochs
from aejax.engine import parallel, train
from aejax.model import objectives
from aejax.research import multi_seed

BATCH = 100
LR = 1e-3
SEEDS = 8
TINY = {"train_limit": 1000, "test_limit": 200, "hidden": 32, "latent": 16, "epochs": 2}
DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"  # GPU only; CPU XLA ignores it
# Name prefixes: "jax" also matches jaxlib and JAX's CUDA and ROCm plugins.
PACKAGES = ("jax", "flax", "optax", "orbax-checkpoint", "libtpu")
STAGE_KEYS = ("test_loss", "test_accuracy", "compile_s", "seconds_per_epoch", "epochs_s")
ENV_VARS = ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_NUM_CPU_DEVICES", "CUDA_VISIBLE_DEVICES")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every measurement trains: the data, the model, the epochs."""

    data: aejax.DataConfig
    model: aejax.ModelConfig
    epochs: int
    batch_size: int = BATCH
    tiny: bool = False


def settings(args) -> Settings:
    """The flags as configs; --tiny shrinks data, model and epochs for a CPU smoke run."""
    tiny = TINY if args.tiny else {}
    epochs = args.epochs or tiny.get("epochs", 3)
    if epochs < 2:  # the first epoch pays for warm-up: a steady state needs a second one
        raise aejax.UserError(f"epochs must be at least 2, got {epochs}", settings=("epochs",))
    limits = {k: tiny[k] for k in ("train_limit", "test_limit") if k in tiny}
    source = "idx" if args.data_dir else "auto"  # a wrong folder fails at once, not after tfds
    data = aejax.DataConfig(args.dataset, source, args.data_dir, **limits)
    model = aejax.ModelConfig(**{k: tiny[k] for k in ("hidden", "latent") if k in tiny})
    return Settings(data, model, epochs, tiny=args.tiny)


def environment() -> dict:
    """Backend, versions (JAX's accelerator plugins too), devices, the variables that steer XLA."""
    devices, kinds = jax.devices(), sorted({d.device_kind for d in jax.devices()})
    found = {(d.name or "").lower().replace("_", "-"): d.version for d in distributions()}
    return {
        "backend": jax.default_backend(),
        "versions": {k: v for k, v in sorted(found.items()) if k.startswith(PACKAGES)},
        "devices": {"kinds": kinds, "count": len(devices), "process_count": jax.process_count()},
        "env": {name: os.environ.get(name) for name in ENV_VARS},
        "machine": machine.describe(),
    }


def initial_params(setup: Settings, input_dim: int):
    """`SEEDS` autoencoders' initial params, stacked: one init program serves every check."""
    model = aejax.make_autoencoder(setup.model, input_dim)  # params are float32 in any dtype
    return multi_seed.init_params(model, input_dim, multi_seed.seed_keys(range(SEEDS), 0))


def fresh_state(params):
    """The first seed's params (new arrays) and a fresh Adam state, as `train.create_state` has."""
    return train.initial_state(None, jax.tree.map(lambda leaf: leaf[0], params), optax.adam(LR))


def train_autoencoder(model_config, state, data, epochs: int, devices: int = 1):
    """Train the autoencoder from `state` `epochs` epochs data-parallel over `devices` devices,
    as the pretrain stage does (one compiled epoch program); the final state and the timings."""
    mesh = parallel.data_mesh(devices, BATCH)
    model = aejax.make_autoencoder(model_config, data.input_dim)
    metrics_fn = objectives.reconstruction_metrics(model.apply, aejax.ObjectiveConfig())
    state = parallel.place(state, mesh)
    device_data = aejax.to_device(data, None, parallel.replicated(mesh))
    keys = [parallel.place(jax.random.fold_in(jax.random.key(1), e), mesh) for e in range(epochs)]
    compiled = stage_epochs.compile_stage(metrics_fn, state, device_data, BATCH, keys[0], mesh)
    seconds = []
    for epoch, key in enumerate(keys):
        state, record, _ = stage_epochs.run_epoch(compiled, state, device_data, key, epoch + 1)
        seconds.append(record.seconds)
    timings = {"devices": devices, "compile_s": compiled.compile_s, "epoch_s": seconds}
    steady = stage_epochs.steady_state_seconds(seconds)
    return state, {**timings, "steady_epoch_s": steady, "test_loss": record.test["loss"]}


def autoencoder_dtypes(setup: Settings, data, params) -> dict:
    """The autoencoder's epoch and test loss with float32 and with bfloat16 matmuls."""
    rows = {}
    for dtype in ("float32", "bfloat16"):
        model = dataclasses.replace(setup.model, dtype=dtype)
        _, rows[dtype] = train_autoencoder(model, fresh_state(params), data, setup.epochs)
    speedup = rows["float32"]["steady_epoch_s"] / rows["bfloat16"]["steady_epoch_s"]
    return {**rows, "bfloat16_speedup": speedup}


def pipeline(setup: Settings, data) -> dict:
    """`aejax.run_pipeline` in a temporary workdir: wall time and final test accuracy."""
    schedule = aejax.TrainConfig(epochs=setup.epochs, batch_size=BATCH, lr=LR)
    with tempfile.TemporaryDirectory(prefix="device_check-") as workdir:
        common = {"workdir": workdir, "model": setup.model, "data": setup.data, "train": schedule}
        stages = aejax.PretrainConfig(**common), aejax.FinetuneConfig(**common)
        start = time.perf_counter()
        done = aejax.run_pipeline(*stages, data, progress=False)
        wall = time.perf_counter() - start
    stages = {"pretrain": done.pretrain.metrics, "finetune": done.finetune.metrics}
    picked = {name: {k: m[k] for k in STAGE_KEYS if k in m} for name, m in stages.items()}
    return {"wall_s": wall, **picked}


def time_seeds(setup: Settings, data, params, seeds: int) -> dict:
    """The first `seeds` of `params` trained as one vmapped program; the faster of two runs."""
    model = aejax.make_autoencoder(setup.model, data.input_dim)
    metrics_fn = objectives.reconstruction_metrics(model.apply, aejax.ObjectiveConfig())
    keys = multi_seed.seed_keys(range(seeds), 1)
    stacked = jax.tree.map(lambda leaf: leaf[:seeds], params)
    states = multi_seed.make_states(model.apply, stacked, optax.adam(LR))
    split = jax.device_put(data.train)  # every seed trains on all of it
    indices = jnp.tile(jnp.arange(len(split.labels), dtype=jnp.int32), (seeds, 1))
    start = time.perf_counter()
    run = multi_seed.compile_run(metrics_fn, states, split, keys, indices, BATCH, setup.epochs)
    compile_s, best = time.perf_counter() - start, math.inf
    for _ in range(2):  # the first call may still pay for allocation; keep the faster one
        fresh = jax.block_until_ready(jax.tree.map(jnp.copy, states))  # runs donate their state
        start = time.perf_counter()
        losses = jax.device_get(run(fresh, *split, keys, indices)[1]["loss"])
        best = min(best, time.perf_counter() - start)
    timings = {"seeds": seeds, "seconds": best, "compile_s": compile_s}
    per_seed_epoch, final_loss = best / (seeds * setup.epochs), float(losses[:, -1].mean())
    return {**timings, "seconds_per_seed_epoch": per_seed_epoch, "final_train_loss": final_loss}


def multi_seed_speed(setup: Settings, data, params) -> dict:
    """1 seed alone, then `SEEDS` vmapped; ``ratio_vs_loop`` < 1 means vmapping pays."""
    one, many = time_seeds(setup, data, params, 1), time_seeds(setup, data, params, SEEDS)
    ratio = many["seconds"] / (SEEDS * one["seconds"])
    return {"one_seed": one, "many_seeds": many, "ratio_vs_loop": ratio}


def digest_run(setup: Settings, data) -> str:
    """One process of the determinism check: train, then SHA-256 of the final params' bytes."""
    params = initial_params(setup, data.input_dim)
    state, row = train_autoencoder(setup.model, fresh_state(params), data, setup.epochs)
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(state.params)):  # in tree order
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return json.dumps({"sha256": digest.hexdigest(), "test_loss": row["test_loss"]})


def determinism(args, setup: Settings, timeout: int = 600) -> dict:
    """The same float32 training in two fresh processes with deterministic XLA ops: bit-equal?"""
    flags = f"{os.environ.get('XLA_FLAGS', '')} {DETERMINISTIC_FLAG}".strip()
    # Each takes only the device memory it needs (a GPU process otherwise takes 75% at once).
    env = {**os.environ, "XLA_FLAGS": flags, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    command = [sys.executable, str(Path(__file__).resolve()), "--params-digest"]
    command += ["--dataset", args.dataset, "--epochs", str(setup.epochs)]
    command += ["--data-dir", args.data_dir] if args.data_dir else []
    command += ["--tiny"] if args.tiny else []
    runs = []
    for _ in range(2):  # one after the other: a TPU admits one process at a time
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise SystemExit(f"determinism run failed with exit status {done.returncode}: {tail}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    digests, losses = [r["sha256"] for r in runs], [r["test_loss"] for r in runs]
    same = digests[0] == digests[1]
    return {"xla_flags": flags, "equal": same, "sha256": digests, "test_loss": losses}


def device_counts(batch: int, present: int) -> tuple[list[int], list[int]]:
    """Device counts to time (1, 2, 4, ... and all present, those dividing `batch`); skipped."""
    candidates = sorted({2**i for i in range(present.bit_length())} | {present})
    return [n for n in candidates if batch % n == 0], [n for n in candidates if batch % n]


def data_parallel(setup: Settings, data, params, one_device: dict) -> dict:
    """The float32 epoch on 2, 4, ... devices, and its speed-up over `one_device` (its row)."""
    counts, skipped = device_counts(BATCH, len(jax.devices()))
    runs = {"1": {**one_device, "speedup": 1.0}}
    for n in counts[1:]:
        row = train_autoencoder(setup.model, fresh_state(params), data, setup.epochs, n)[1]
        runs[str(n)] = {**row, "speedup": one_device["steady_epoch_s"] / row["steady_epoch_s"]}
    return {"devices_present": len(jax.devices()), "skipped": skipped, "runs": runs}


def _epoch_text(row: dict) -> str:
    return f"{row['steady_epoch_s']:.4f} s per epoch, test loss {row['test_loss']:.5f}"


def markdown(record: dict) -> str:
    """The summary table (one line per check), the machine and the command."""
    env, dtypes, pipe = record["environment"], record["autoencoder_dtypes"], record["pipeline"]
    seeds, same, devices = record["multi_seed"], record["determinism"], env["devices"]
    one, many, epochs = seeds["one_seed"], seeds["many_seeds"], record["settings"]["epochs"]
    rows = {
        "backend": f"{env['backend']}: {devices['count']} × {', '.join(devices['kinds'])}",
        "versions": ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        "XLA_FLAGS": f"`{env['env']['XLA_FLAGS']}`" if env["env"]["XLA_FLAGS"] else "(none)",
        "autoencoder, float32": _epoch_text(dtypes["float32"]),
        "autoencoder, bfloat16": _epoch_text(dtypes["bfloat16"]),
        "bfloat16 speed-up": f"{dtypes['bfloat16_speedup']:.2f}×",
        f"pipeline, {epochs} + {epochs} epochs": (
            f"{pipe['wall_s']:.1f} s wall, test accuracy {pipe['finetune']['test_accuracy']:.4f}"
        ),
        f"{many['seeds']} seeds vmapped vs 1": (
            f"{many['seconds_per_seed_epoch']:.4f} vs {one['seconds_per_seed_epoch']:.4f} s per "
            f"seed-epoch; ratio {seeds['ratio_vs_loop']:.2f} (< 1: vmapping pays)"
        ),
        "determinism, 2 processes": (
            f"{'equal' if same['equal'] else 'DIFFERENT'}, sha256 {same['sha256'][0][:16]}…"
        ),
    }
    for n, row in record["data_parallel"]["runs"].items():
        rows[f"data parallel, {n} devices"] = f"{_epoch_text(row)}, speed-up {row['speedup']:.2f}×"
    lines = ["| check | result |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows.items())]
    lines += ["", f"Machine: {machine.summary_line(env['machine'])}.", ""]
    return "\n".join([*lines, f"Command: `{record['command']}`"]) + "\n"


def benchmark(args) -> str:
    """Every check in turn; the results files, and the table as the printed summary."""
    setup = settings(args)
    start = time.perf_counter()
    data = aejax.load_dataset(setup.data)
    data_s = time.perf_counter() - start
    if args.params_digest:
        return digest_run(setup, data)
    # Before this process touches the device: on a GPU it then holds most of the memory.
    same = determinism(args, setup)
    env = environment()
    args.name = args.name or f"device_check-{env['backend']}"
    params = initial_params(setup, data.input_dim)
    dtypes = autoencoder_dtypes(setup, data, params)
    record = {
        "command": args.command,
        "settings": {**dataclasses.asdict(setup), "loaded": data.describe(), "data_s": data_s},
        "environment": env,
        "autoencoder_dtypes": dtypes,
        "pipeline": pipeline(setup, data),
        "multi_seed": multi_seed_speed(setup, data, params),
        "determinism": same,
        "data_parallel": data_parallel(setup, data, params, dtypes["float32"]),
    }
    return results.write(args, record, markdown(record))


def main(argv=None) -> int:
    parser = results.parser(__doc__, None)
    parser.add_argument("--epochs", type=int, default=None, help="per measurement (default 3)")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run: small data and model")
    parser.add_argument("--params-digest", action="store_true", help=argparse.SUPPRESS)
    return results.run(benchmark, parser, "device_check.py", argv)


if __name__ == "__main__":
    sys.exit(main())
