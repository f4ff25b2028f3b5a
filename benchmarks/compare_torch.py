"""aejax against the PyTorch reference pipeline in three input styles, side by side.

    python benchmarks/compare_torch.py --dataset fashion_mnist \\
        --data-dir /usr/share/datasets/fashion-mnist --epochs 3 --seeds 3

Each contender (aejax, then the PyTorch styles "as_written", "eager", "compiled") runs both stages
in a process of its own, so wall time and peak memory are per contender; rounds alternate the
contenders (the order rotates every seed) so that a noisy machine penalises each alike. Writes
``--out-dir/<name>.json`` and ``<name>.md``. A style whose packages do not import here (e.g.
torchvision for "as_written") is skipped with the reason; run the script with a Python that has
them (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine
import report
from contender import CONTENDERS

HERE = Path(__file__).resolve().parent
NEEDS = {"as_written": "torch, torchvision", "eager": "torch", "compiled": "torch"}


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--dataset", default="fashion_mnist", choices=("fashion_mnist", "mnist"))
    add("--data-dir", default="/usr/share/datasets/fashion-mnist", help="folder of the IDX files")
    add("--epochs", type=int, default=3, help="epochs of each stage")
    add("--seeds", type=int, default=1, help="run every contender with seeds 0..N-1")
    add("--train-limit", type=int, default=None, help="first N training examples only")
    add("--test-limit", type=int, default=None, help="first N test examples only")
    add("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    add("--name", default=None, help="results file stem (default: dataset and sizes)")
    add("--out-dir", default=str(HERE / "results"))
    add("--workdir", default="runs/compare_torch", help="scratch: checkpoints, torchvision copy")
    add("--torch-threads", type=int, default=None, help="default: PyTorch's own (all cores)")
    add("--peak-size", type=int, default=2048, help="matmul size for the GFLOP/s peak")
    add("--timeout", type=int, default=3600, help="seconds allowed to one contender run")
    return parser.parse_args(argv)


def missing_packages(contender: str) -> str | None:
    """Why `contender` cannot run with this Python (its imports fail), or None if it can."""
    if contender not in NEEDS:
        return None
    probe = subprocess.run(
        [sys.executable, "-c", f"import {NEEDS[contender]}"], capture_output=True, text=True
    )
    if probe.returncode == 0:
        return None
    last = (probe.stderr.strip().splitlines() or ["import failed"])[-1]
    return f"`import {NEEDS[contender]}` fails with {sys.executable} ({last})"


def run_child(contender: str, args, seed: int, scratch: Path) -> dict:
    """One contender run in its own process: its result, wall time and exit status."""
    out = scratch / f"{contender}-{seed}.json"
    command = [sys.executable, str(HERE / "contender.py"), contender, "--out", str(out)]
    command += ["--dataset", args.dataset, "--data-dir", args.data_dir, "--seed", str(seed)]
    command += ["--epochs", str(args.epochs), "--workdir", args.workdir]
    command += ["--peak-size", str(args.peak_size)]
    for flag in ("train_limit", "test_limit", "torch_threads"):
        if getattr(args, flag) is not None:
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    env = {"JAX_PLATFORMS": "cpu", **os.environ}  # a CPU benchmark, even where a GPU exists
    started = time.time()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return {"contender": contender, "seed": seed, "error": f"timed out after {args.timeout}s"}
    run = {"contender": contender, "seed": seed, "returncode": done.returncode}
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return {**run, "error": f"exit status {done.returncode}: {tail}"}
    result = json.loads(out.read_text())
    run["wall_s"] = result.pop("done_at", time.time()) - started
    return {**run, "result": result}


def rounds(contenders: list[str], seeds: int) -> list[tuple[str, int]]:
    """(contender, seed) in run order: every seed runs all contenders, starting one later."""
    order = []
    for seed in range(seeds):
        shift = seed % len(contenders)
        order += [(c, seed) for c in contenders[shift:] + contenders[:shift]]
    return order


def main(argv=None) -> int:
    args = parse(argv)
    skipped = {c: why for c in args.contenders if (why := missing_packages(c))}
    for contender, why in skipped.items():
        print(f"skipping {contender}: {why}", flush=True)
    contenders = [c for c in args.contenders if c not in skipped]
    runs, failed = [], {}
    with tempfile.TemporaryDirectory(prefix="compare_torch-") as scratch:
        peaks = [run_child("peak", args, 0, Path(scratch))]
        for contender, seed in rounds(contenders, args.seeds):
            print(f"running {contender} (seed {seed}) ...", flush=True)
            run = run_child(contender, args, seed, Path(scratch))
            runs.append(run)
            if "error" in run:
                failed[contender] = run["error"]
                print(f"  {contender} failed: {run['error']}", flush=True)
            else:
                print(f"  done in {run['wall_s']:.1f}s", flush=True)
        peaks.append(run_child("peak", args, 0, Path(scratch)))
    results = build_report(args, runs, peaks, skipped, failed)
    write(results, Path(args.out_dir), args.name or default_name(args))
    return 1 if failed or "aejax" not in results["summary"] else 0


def build_report(args, runs, peaks, skipped, failed) -> dict:
    """Everything the JSON file holds: settings, machine, per-run results, summary, ratios."""
    done = [r["result"] for r in runs if r.get("result")]
    num_train = done[0]["num_train"] if done else None
    peak_gflops = max((p["result"]["matmul_gflops"] for p in peaks if p.get("result")), default=0)
    ae_flops = machine.ae_epoch_flops(num_train) if num_train else 0
    info = machine.describe()
    summary = report.summarize(runs, ae_flops, peak_gflops)
    return {
        "command": shlex.join(["python", "benchmarks/compare_torch.py", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "dataset": args.dataset,
            "epochs": args.epochs,
            "seeds": list(range(args.seeds)),
            "num_train": num_train,
            "num_test": done[0]["num_test"] if done else None,
            "batch_size": 100,
            "lr": 1e-3,
            "torch_threads": args.torch_threads,
        },
        "machine": info,
        "machine_line": machine.summary_line(info),
        "peak": {"gflops": peak_gflops, "size": args.peak_size},
        "ae_epoch_gflop": ae_flops / 1e9,
        "skipped": skipped,
        "failed": failed,
        "summary": summary,
        "ratios": report.ratios(summary),
        "runs": runs,
    }


def default_name(args) -> str:
    sizes = "" if args.train_limit is None else f"_{args.train_limit}"
    return f"{args.dataset}{sizes}_e{args.epochs}_s{args.seeds}"


def write(results: dict, out_dir: Path, name: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report.markdown(results) if results["summary"] else "No contender finished.\n"
    (out_dir / f"{name}.md").write_text(table)
    print(table, end="")
    print(f"wrote {out_dir / name}.json and .md")


if __name__ == "__main__":
    sys.exit(main())
