"""Checks that two checkouts of aejax produce bit-identical results on a real subset.

`run` drives a checkout's command-line scripts (pretrain, finetune, evaluate, label_budget) as
subprocesses on the first 5000/1000 Fashion-MNIST train/test images, on the CPU, and writes a JSON
digest of every number they produce: metrics, per-epoch history, SHA-256 of every checkpointed
parameter, the files each stage writes, evaluate.py's output and the label-budget cells. Timing
and machine fields are left out. `compare` then checks two digests value by value.

Usage:
  python benchmarks/behaviour_check.py run --repo PATH --out DIGEST.json \\
      [--data-dir /usr/share/datasets/fashion-mnist] [--workdir TMPDIR]
  python benchmarks/behaviour_check.py compare A.json B.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the checkpoint reads below need no accelerator

import jax  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
SUBSET = ["--train-limit", "5000", "--test-limit", "1000"]
# Wall-clock and machine fields differ from run to run even when every computed number agrees.
VOLATILE = set("seconds seconds_per_epoch compile_s wall_s examples_per_s backend source".split())


def _env(repo: Path) -> dict[str, str]:
    # PYTHONPATH first on sys.path: the checkout under test wins over an installed (editable) aejax.
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(repo)}


def _call(repo: Path, *args: str) -> str:
    """Run `python ARGS` in `repo`; its stdout, or exit 2 with the tail of its stderr."""
    cmd = [sys.executable, *args]
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=repo, env=_env(repo), capture_output=True, text=True)
    if done.returncode != 0:
        print(f"failed with exit status {done.returncode}:\n{done.stderr[-4000:]}", file=sys.stderr)
        sys.exit(2)
    return done.stdout


def check_import(repo: Path) -> None:
    """Fail unless the subprocesses import aejax from `repo` itself."""
    found = Path(_call(repo, "-c", "import aejax; print(aejax.__file__)").strip()).resolve()
    if not found.is_relative_to(repo):
        sys.exit(f"aejax is imported from {found}, not from {repo}; the digest would be wrong")


def _clean(value):
    """`value` without the VOLATILE keys, nor keys ending in _s (timings), at any depth."""
    if isinstance(value, dict):
        return {
            k: _clean(v) for k, v in value.items() if k not in VOLATILE and not k.endswith("_s")
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def params_sha256(checkpoints: Path) -> dict[str, str]:
    """SHA-256 of each params leaf of the newest checkpoint, read with Orbax alone."""
    latest = max(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
    with ocp.StandardCheckpointer() as reader:
        params = reader.restore((checkpoints / str(latest) / "state").absolute())["params"]
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return {
        jax.tree_util.keystr(path): hashlib.sha256(np.asarray(leaf).tobytes()).hexdigest()
        for path, leaf in leaves
    }


def stage_digest(stage: Path) -> dict:
    """Metrics, history, parameter hashes and file names of one stage folder."""
    history = (stage / "metrics.jsonl").read_text().splitlines()
    files = [p.relative_to(stage) for p in stage.rglob("*") if p.is_file()]
    return {
        "metrics": _clean(json.loads((stage / "metrics.json").read_text())),
        "history": [_clean(json.loads(row)) for row in history if row.strip()],
        "params_sha256": params_sha256(stage / "checkpoints"),
        # Checkpoints are hashed above; TensorBoard event files are named by time, host and pid.
        "files": sorted(str(p) for p in files if p.parts[0] not in ("checkpoints", "tensorboard")),
    }


def _stage(repo: Path, script: str, workdir: Path, data_dir: str, *extra: str) -> None:
    """One stage script on the subset; 2 epochs unless `extra` says otherwise (last flag wins)."""
    common = ["--dataset", "fashion_mnist", "--data-dir", data_dir, *SUBSET, "--epochs", "2"]
    _call(repo, f"scripts/{script}.py", "--workdir", str(workdir), *common, "--no-progress", *extra)


def run_stages(repo: Path, root: Path, data_dir: str) -> dict:
    """The reference pipeline, its variants, evaluate.py: digests keyed by run name."""
    names = "reference variant scratch frozen early_stop".split()
    ref, variant, scratch, frozen, early = (root / n for n in names)
    _stage(repo, "pretrain", ref, data_dir)
    _stage(repo, "finetune", ref, data_dir)
    _stage(repo, "pretrain", variant, data_dir, *"--loss bce --noise mask:0.3".split())
    discriminative = "--mode discriminative --encoder-lr-scale 0.1 --val-split 500 --patience 1"
    _stage(repo, "finetune", variant, data_dir, *discriminative.split(), "--epochs", "3")
    _stage(repo, "finetune", scratch, data_dir, *"--encoder scratch --mode full".split())
    frozen_flags = ["--mode", "frozen", "--pretrained-dir", str(ref / "pretrain")]
    _stage(repo, "finetune", frozen, data_dir, *frozen_flags)
    # A large lr makes validation stall, so training stops early and the best epoch is restored.
    stop_flags = "--lr 0.01 --val-split 500 --patience 1 --epochs 8 --pretrained-dir".split()
    _stage(repo, "finetune", early, data_dir, *stop_flags, str(ref / "pretrain"))
    evaluated = json.loads(_call(repo, "scripts/evaluate.py", str(ref / "finetune")))
    return {
        "reference": {s: stage_digest(ref / s) for s in ("pretrain", "finetune")},
        "variant": {s: stage_digest(variant / s) for s in ("pretrain", "finetune")},
        "scratch_full": {"finetune": stage_digest(scratch / "finetune")},
        "frozen": {"finetune": stage_digest(frozen / "finetune")},
        "early_stop": {"finetune": stage_digest(early / "finetune")},
        "evaluate": evaluated,
    }


def run_study(repo: Path, out: Path, data_dir: str) -> dict:
    """A small label-budget study: its cells (without timings) and pretraining test MSE."""
    flags = "--labels 100,1000 --seeds 2 --pretrain-epochs 1 --epochs 1 --min-steps 20"
    flags += " --test-limit 1000 --dataset fashion_mnist --no-progress"
    args = [*flags.split(), "--data-dir", data_dir, "--out", str(out)]
    # Checkouts without the vmap timing have no flag to skip it; it produces no digested number.
    usage = _call(repo, "scripts/label_budget.py", "--help")
    if "--timing-seeds" in usage:
        args += ["--timing-seeds", "0"]
    if "--methods" in usage:  # the four methods every checkout has
        args += ["--methods", "scratch,pretrained-full,pretrained-discriminative,pretrained-frozen"]
    _call(repo, "scripts/label_budget.py", *args)
    result = json.loads((out / "label_budget.json").read_text())
    cells = [{k: v for k, v in cell.items() if k != "seconds"} for cell in result["cells"]]
    mse = result["pretrain_test_loss"]["mse"] if "pretrain_test_loss" in result else None
    return {"cells": cells, "pretrain_test_mse": result.get("pretrain_test_mse", mse)}


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Leaves of nested dicts and lists by path, e.g. ``reference/pretrain/history/0/loss``."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: value}
    flat = {}
    for key, item in items:
        flat.update(flatten(item, f"{prefix}/{key}" if prefix else str(key)))
    return flat


def compare(path_a: str, path_b: str) -> int:
    """0 when both digests hold the same values at the same paths; else list the differences."""
    a = flatten(json.loads(Path(path_a).read_text()))
    b = flatten(json.loads(Path(path_b).read_text()))
    missing = object()
    # repr is exact for floats and also tells 1 from 1.0, 0.0 from -0.0 and matches NaN to NaN.
    differ = [
        k for k in sorted(a.keys() | b.keys()) if repr(a.get(k, missing)) != repr(b.get(k, missing))
    ]
    for key in differ:
        print(f"{key}: {a.get(key, '<absent>')!r} != {b.get(key, '<absent>')!r}")
    if differ:
        print(f"{len(differ)} of {len(a.keys() | b.keys())} values differ")
        return 1
    print(f"identical: {len(a)} values")
    return 0


def run(args: argparse.Namespace) -> int:
    repo = Path(args.repo).resolve()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="behaviour_check_")).resolve()
    # Stage scripts resume from what a workdir holds, which would change the numbers.
    if root.exists() and any(root.iterdir()):
        sys.exit(f"{root} is not empty; give a fresh --workdir")
    check_import(repo)
    digest = {
        **run_stages(repo, root, args.data_dir),
        "label_budget": run_study(repo, root / "label_budget", args.data_dir),
    }
    Path(args.out).write_text(json.dumps(digest, indent=2, sort_keys=True) + "\n")
    print(f"{len(flatten(digest))} values written to {args.out} (runs in {root})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run the scripts of a checkout and write its digest")
    run_parser.add_argument("--repo", required=True, help="root of the aejax checkout to run")
    run_parser.add_argument("--out", required=True, help="digest JSON to write")
    run_parser.add_argument("--data-dir", default=DATA_DIR, help="folder with the IDX files")
    run_parser.add_argument("--workdir", default=None, help="empty folder for the runs")
    compare_parser = sub.add_parser("compare", help="compare two digests exactly")
    compare_parser.add_argument("a")
    compare_parser.add_argument("b")
    args = parser.parse_args()
    return run(args) if args.command == "run" else compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
