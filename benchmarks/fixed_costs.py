"""Where a warm run's fixed cost goes, step by step: what it spends beyond imports and epochs.

    python benchmarks/fixed_costs.py --dataset fashion_mnist \\
        --data-dir /usr/share/datasets/fashion-mnist --epochs 10 --rounds 5 [-- pipeline flags]

Each round runs the whole pipeline (``--epochs`` of each stage) twice as separate processes on a
compile cache the first, cold, run filled: once as ``scripts/pipeline.py`` and once with a timer
around each step (`timed_pipeline.py`), in an order that alternates. The *fixed cost* is the wall
time less process start and imports and less the steady-state epochs (as in
`time_to_result.py`); the table splits it into the timed steps, the epochs' first-run warm-up,
what lies between the steps, and the process's exit. The plain runs show what the timers cost.

Writes ``results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine
import results

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def command(args, timed: Path | None, workdir: Path, cache: Path) -> list[str]:
    flags = ["--dataset", args.dataset, "--epochs", str(args.epochs), "--workdir", str(workdir)]
    flags += ["--compile-cache", str(cache), "--no-progress"]
    if args.data_dir:
        flags += ["--data-dir", args.data_dir]
    flags += [a for a in args.pipeline_flags if a != "--"]
    if timed is None:
        return [sys.executable, str(REPO / "scripts" / "pipeline.py"), *flags]
    return [sys.executable, str(HERE / "timed_pipeline.py"), str(timed), *flags]


def run_one(args, kind: str, scratch: Path, cache: Path) -> dict:
    """One whole process: `kind` is "cold" or "warm" (both timed) or "plain" (warm, untimed)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=scratch))
    times = None if kind == "plain" else workdir / "times.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    spawned = time.time()
    done = subprocess.run(
        command(args, times, workdir / "run", cache), capture_output=True, text=True, env=env
    )
    ended = time.time()
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"the {kind} run failed with exit status {done.returncode}: {tail}")
    record = json.loads((workdir / "run" / "pipeline.json").read_text())
    row = {"kind": kind, "wall_s": ended - spawned, **_epochs(record)}
    row["start_s"] = record["started_at"] - spawned
    row["imports_s"] = record["imports_s"]
    if times is not None:
        timed = json.loads(times.read_text())
        row["main_s"] = timed["main_s"]
        row["steps"] = timed["steps"]
        row["exit_s"] = ended - timed["returned_at"]
    shutil.rmtree(workdir, ignore_errors=True)
    return row


def _epochs(record: dict) -> dict:
    stages = [record["pretrain"], record["finetune"]]
    return {
        "steady_epochs_s": sum(s["seconds_per_epoch"] * s["epochs_run_now"] for s in stages),
        "accuracy": record["finetune"]["test_accuracy"],
    }


def split(run: dict) -> dict[str, float]:
    """A timed run's fixed cost, step by step: each timed step, the epochs beyond their steady
    state, what lies between the steps, and the exit."""
    steps = dict(run["steps"])
    warm_up = steps.pop("epochs") - run["steady_epochs_s"]
    parts = {**steps, "epochs beyond their steady state": warm_up}
    parts["between the timed steps"] = run["main_s"] - sum(run["steps"].values())
    parts["exit (interpreter teardown)"] = run["exit_s"]
    return parts


def fixed_cost(run: dict) -> float:
    """Wall time beyond process start, imports and the steady-state epochs."""
    return run["wall_s"] - run["start_s"] - run["imports_s"] - run["steady_epochs_s"]


def summarize(runs: list[dict]) -> dict:
    median = statistics.median
    warm = [r for r in runs if r["kind"] == "warm"]
    plain = [r for r in runs if r["kind"] == "plain"]
    parts = [split(r) for r in warm]
    return {
        "warm_wall_s": median(r["wall_s"] for r in warm),
        "plain_wall_s": median(r["wall_s"] for r in plain),
        "plain_steady_epochs_s": median(r["steady_epochs_s"] for r in plain),
        "plain_fixed_s": median(fixed_cost(r) for r in plain),
        "start_s": median(r["start_s"] for r in warm),
        "imports_s": median(r["imports_s"] for r in warm),
        "steady_epochs_s": median(r["steady_epochs_s"] for r in warm),
        "fixed_s": median(fixed_cost(r) for r in warm),
        "parts": {k: median(p[k] for p in parts) for k in parts[0]},
        "cold_parts": split(next(r for r in runs if r["kind"] == "cold")),
    }


def markdown(record: dict) -> str:
    s = record["summary"]
    rows = sorted(s["parts"].items(), key=lambda kv: -kv[1])
    lines = [
        f"Warm {record['epochs']} + {record['epochs']} epochs, median of {record['rounds']} "
        f"rounds; {record['machine_line']}.",
        "",
        f"- wall {s['warm_wall_s']:.2f} s (untimed runs: {s['plain_wall_s']:.2f} s); process "
        f"start {s['start_s']:.2f} s, imports {s['imports_s']:.2f} s, steady-state epochs "
        f"{s['steady_epochs_s']:.2f} s",
        f"- **fixed cost {s['fixed_s']:.2f} s**; the medians of its parts add up to "
        f"{sum(s['parts'].values()):.2f} s",
        f"- untimed runs: steady-state epochs {s['plain_steady_epochs_s']:.2f} s, fixed cost "
        f"{s['plain_fixed_s']:.2f} s",
        "",
        "| step | s |",
        "|---|---:|",
        *(f"| {name} | {seconds:.3f} |" for name, seconds in rows if abs(seconds) >= 0.0005),
    ]
    return "\n".join(lines) + "\n"


def benchmark(args) -> str:
    scratch = Path(tempfile.mkdtemp(prefix="fixed-costs-"))
    cache = scratch / "cache"
    try:
        runs = [run_one(args, "cold", scratch, cache)]  # fills the cache the warm runs use
        for r in range(args.rounds):
            for kind in ("warm", "plain") if r % 2 == 0 else ("plain", "warm"):
                runs.append(run_one(args, kind, scratch, cache))
                print(f"round {r + 1}: {kind} {runs[-1]['wall_s']:.2f} s", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    info = machine.describe()
    record = {
        "command": args.command,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "machine": info,
        "machine_line": machine.summary_line(info),
        "summary": summarize(runs),
        "runs": runs,
    }
    return results.write(args, record, markdown(record))


def main(argv=None) -> int:
    parser = results.parser(__doc__, "fixed_costs")
    parser.add_argument("--epochs", type=int, default=10, help="of each stage")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("pipeline_flags", nargs=argparse.REMAINDER, help="after --: to the runs")
    return results.run(benchmark, parser, "fixed_costs.py", argv)


if __name__ == "__main__":
    sys.exit(main())
