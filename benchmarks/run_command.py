"""The README run command as a user times it: `bash scripts/run_pipeline.sh`, whole, repeatedly.

    python benchmarks/run_command.py --dataset fashion_mnist \\
        --data-dir /usr/share/datasets/fashion-mnist --runs 4 [-- more pipeline flags]

Each run is the whole command (setup check, interpreter, imports, data, both stages, figures)
into a fresh scratch workdir, with the user's own caches (compiled programs, decompressed data):
the first run may find them cold, every later one finds them warm. Writes
``results/<name>.json`` and ``.md``: per run the wall time against the sum of the steady-state
epoch times the run itself reports, and the median of the warm runs (all runs after the first).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine
import results

from aejax.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def run_once(args, workdir: Path) -> dict:
    """One whole run of the command: its wall time, and what its pipeline.json reported."""
    command = ["bash", str(REPO / "scripts" / "run_pipeline.sh"), "--dataset", args.dataset]
    command += ["--workdir", str(workdir), "--no-progress"]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    command += [a for a in args.pipeline_flags if a != "--"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"the run command failed with exit status {done.returncode}: {tail}")
    record = json.loads((workdir / "pipeline.json").read_text())
    stages = [record["pretrain"], record["finetune"]]
    steady = sum(s["seconds_per_epoch"] * s["epochs_run_now"] for s in stages)
    return {
        "wall_s": wall,
        "steady_epochs_s": steady,
        "wall_over_steady_epochs": wall / steady,
        "compiled": record["compiled"],
        "programs": record["programs"],
        "test_accuracy": record["finetune"]["test_accuracy"],
        "pretrain_test_loss": record["pretrain"]["test_loss"],
    }


def benchmark(args) -> str:
    if args.runs < 1:
        raise UserError(f"--runs must be at least 1, got {args.runs}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="run_command-") as scratch:
        for i in range(args.runs):
            runs.append(run_once(args, Path(scratch) / f"run-{i}"))
            row = runs[-1]
            print(f"run {i}: {row['wall_s']:.1f} s, {row['wall_over_steady_epochs']:.3f}x")
    warm = runs[1:] or runs
    summary = {
        key: statistics.median(r[key] for r in warm)
        for key in ("wall_s", "steady_epochs_s", "wall_over_steady_epochs")
    }
    record = {
        "command": args.command,
        "machine": machine.describe(),
        "warm_median": summary,
        "runs": runs,
    }
    return results.write(args, record, markdown(record))


def markdown(record: dict) -> str:
    lines = [
        "| run | wall s | Σ steady-state epochs s | wall / Σ epochs | compiled | accuracy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(record["runs"]):
        lines.append(
            f"| {i} | {r['wall_s']:.2f} | {r['steady_epochs_s']:.2f} | "
            f"{r['wall_over_steady_epochs']:.3f} | {r['compiled']} of {r['programs']} | "
            f"{r['test_accuracy']:.4f} |"
        )
    warm = record["warm_median"]
    lines += [
        "",
        f"Warm runs (after the first), median: wall {warm['wall_s']:.2f} s against "
        f"{warm['steady_epochs_s']:.2f} s of steady-state epochs: "
        f"**{warm['wall_over_steady_epochs']:.3f}×**.",
        "",
        f"Machine: {machine.summary_line(record['machine'])}.",
        "",
        f"Command: `{record['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = results.parser(__doc__, "run_command")
    parser.add_argument("--runs", type=int, default=4, help="whole runs, one after another")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    parser.add_argument("pipeline_flags", nargs=argparse.REMAINDER, help="after --: to the run")
    return results.run(benchmark, parser, "run_command.py", argv)


if __name__ == "__main__":
    sys.exit(main())
