"""Time to result: the whole run a user times, from process start to the final test accuracy.

    python benchmarks/time_to_result.py --dataset fashion_mnist \\
        --data-dir /usr/share/datasets/fashion-mnist --epochs 3 10 --rounds 3

Contenders, each a whole process (interpreter start, imports, data, both stages, evaluation),
run in rounds that rotate their order (this machine's speed drifts):

- ``aejax-cold``: ``scripts/pipeline.py`` with an empty compile cache (always first in a round,
  so that it fills the cache the warm run then uses);
- ``aejax-warm``: the same command again, its programs loaded from that persistent cache;
- ``eager``, ``eager-tuned``, ``compiled``: the PyTorch reference pipeline on preloaded tensors
  (``contender.py``); *tuned* is eager with denormals flushed to zero and one thread per core;
- ``before-cold``, ``before-warm``: with ``--baseline PATH``, the same two runs of another
  checkout of aejax (e.g. ``git worktree add PATH <commit>``), in the same rounds: a change's
  before and after on one host, alternating. ``--contenders`` picks whom to run.

The *fixed cost* row is what a run spends beyond its imports and its epochs: wall time less
process start and imports, the steady-state epochs and the per-epoch test evaluations (inside
the epoch's program in later versions, a phase of its own in earlier ones).

Writes ``results/<name>.json`` and ``.md``: per contender and epoch count the median wall time,
aejax's speed-up over each PyTorch contender, aejax's wall time against the sum of its steady-state
epochs, and where aejax's wall time goes.
"""

from __future__ import annotations

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
TORCH = {"eager": [], "eager-tuned": ["--flush-denormal"], "compiled": []}
CONTENDERS = ("aejax-cold", "aejax-warm", *TORCH)
BASELINE = ("before-cold", "before-warm")
PHASES = ("init_s", "compile_s", "epochs_s", "eval_s", "checkpoint_s", "figures_s")


def aejax_command(args, epochs: int, workdir: Path, cache: Path, repo: Path = REPO) -> list[str]:
    flags = ["--dataset", args.dataset, "--epochs", str(epochs), "--workdir", str(workdir)]
    flags += ["--compile-cache", str(cache), "--no-progress"]
    if args.data_dir:
        flags += ["--data-dir", args.data_dir]
    return [sys.executable, str(repo / "scripts" / "pipeline.py"), *flags]


def torch_command(args, name: str, epochs: int, out: Path, workdir: Path) -> list[str]:
    style = "compiled" if name == "compiled" else "eager"
    flags = [style, "--dataset", args.dataset, "--epochs", str(epochs), "--out", str(out)]
    flags += ["--workdir", str(workdir), *TORCH[name]]
    if args.data_dir:
        flags += ["--data-dir", args.data_dir]
    if name == "eager-tuned":
        flags += ["--torch-threads", str(len(os.sched_getaffinity(0)))]
    return [sys.executable, str(HERE / "contender.py"), *flags]


def run_one(args, name: str, epochs: int, scratch: Path, cache: Path) -> dict:
    """One whole process of contender `name`: its wall time and what it reported."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=scratch))
    out = workdir / "result.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}  # a CPU benchmark, even where a GPU exists
    if name in BASELINE:  # its own checkout first on sys.path, not the installed aejax
        command = aejax_command(args, epochs, workdir, cache, args.baseline)
        env["PYTHONPATH"] = str(args.baseline)
    elif name.startswith("aejax"):
        command = aejax_command(args, epochs, workdir, cache)
    else:
        command = torch_command(args, name, epochs, out, workdir)
    spawned = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    wall = time.time() - spawned
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"{name} failed with exit status {done.returncode}: {tail}")
    ours = name.startswith("aejax") or name in BASELINE
    report = workdir / "pipeline.json" if ours else out
    result = json.loads(report.read_text())
    shutil.rmtree(workdir, ignore_errors=True)
    row = {"contender": name, "epochs": epochs, "wall_s": wall, "spawned": spawned}
    return {
        **row,
        **(_aejax_row(result, spawned) if ours else _torch_row(result)),
    }


def _aejax_row(record: dict, spawned: float) -> dict:
    stages = [record["pretrain"], record["finetune"]]
    phases = {p: sum(s[p] for s in stages) for p in PHASES}
    phases["figures_s"] += record.get("figures_wait_s", 0.0)  # figures drawn aside, waited for
    return {
        "steady_epochs_s": sum(s["seconds_per_epoch"] * s["epochs_run_now"] for s in stages),
        "accuracy": record["finetune"]["test_accuracy"],
        "start_and_imports_s": record["started_at"] - spawned + record["imports_s"],
        "data_s": record["data_s"],
        **phases,
    }


def _torch_row(result: dict) -> dict:
    stages = [result["pretrain"], result["finetune"]]
    steady = [statistics.median(s["epoch_seconds"][1:] or s["epoch_seconds"]) for s in stages]
    epochs = [len(s["epoch_seconds"]) for s in stages]
    return {
        "steady_epochs_s": sum(t * n for t, n in zip(steady, epochs, strict=True)),
        "accuracy": result["finetune"]["test"]["accuracy"],
    }


def schedule(
    epoch_counts: list[int], rounds: int, contenders=CONTENDERS
) -> list[tuple[int, int, list[str]]]:
    """(epochs, round, contender order): the cold runs first (each fills the cache its warm run
    then uses), cold and warm ones each rotating from round to round."""
    colds = [c for c in contenders if c.endswith("-cold")]
    others = [c for c in contenders if not c.endswith("-cold")]
    plan = []
    for epochs in epoch_counts:
        for r in range(rounds):
            order = [*_rotated(colds, r), *_rotated(others, r)]
            plan.append((epochs, r, order))
    return plan


def _rotated(names: list[str], by: int) -> list[str]:
    shift = by % len(names) if names else 0
    return [*names[shift:], *names[:shift]]


BREAKDOWN = {
    "start_and_imports_s": "process start + imports",
    "data_s": "data load",
    "init_s": "init (params, optimizer; encoder restore)",
    "compile_s": "compile (or load from the cache)",
    "epochs_s": "Σ epochs (training)",
    "eval_s": "evaluation (per-epoch test)",
    "checkpoint_s": "checkpoint waits",
    "figures_s": "figures",
    "other_s": "other (device placement, restores, outputs, exit)",
}
OURS = ("aejax-cold", "aejax-warm", *BASELINE)


def summarize(runs: list[dict]) -> dict:
    """Per epoch count: medians per contender, aejax's breakdown, and aejax's speed-ups."""
    summary = {}
    for epochs in sorted({r["epochs"] for r in runs}):
        rows = {}
        for name in (*CONTENDERS, *BASELINE):
            mine = [r for r in runs if r["epochs"] == epochs and r["contender"] == name]
            if mine:
                rows[name] = _summary_row(mine)
        speedups = {
            f"{ours} vs {theirs}": rows[theirs]["wall_s"] / rows[ours]["wall_s"]
            for ours in OURS
            for theirs in TORCH
            if ours in rows and theirs in rows
        }
        summary[str(epochs)] = {"contenders": rows, "speedups": speedups}
    return summary


def _summary_row(runs: list[dict]) -> dict:
    median = statistics.median
    row = {
        "runs": len(runs),
        "wall_s": median(r["wall_s"] for r in runs),
        "steady_epochs_s": median(r["steady_epochs_s"] for r in runs),
        "wall_over_steady_epochs": median(r["wall_s"] / r["steady_epochs_s"] for r in runs),
        "accuracy": median(r["accuracy"] for r in runs),
    }
    if "epochs_s" in runs[0]:
        parts = [k for k in BREAKDOWN if k != "other_s"]
        breakdown = {k: median(r[k] for r in runs) for k in parts}
        breakdown["other_s"] = median(r["wall_s"] - sum(r[k] for k in parts) for r in runs)
        row["breakdown"] = breakdown
        row["fixed_s"] = median(fixed_cost(r) for r in runs)
    return row


def fixed_cost(run: dict) -> float:
    """Wall time beyond process start and imports, the steady-state epochs and the per-epoch
    tests (a phase of their own where the epoch's program does not hold them)."""
    return run["wall_s"] - run["start_and_imports_s"] - run["steady_epochs_s"] - run["eval_s"]


def markdown(record: dict) -> str:
    """The README tables: wall times, speed-ups, and where aejax's time goes."""
    lines = []
    for epochs, block in record["summary"].items():
        rows = block["contenders"]
        lines += [
            f"**{epochs} + {epochs} epochs** (median of {record['rounds']} rounds)",
            "",
            "| contender | wall s | Σ steady-state epochs s | wall / Σ epochs | test accuracy |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in rows.items():
            lines.append(
                f"| {name} | {row['wall_s']:.1f} | {row['steady_epochs_s']:.1f} | "
                f"{row['wall_over_steady_epochs']:.2f} | {row['accuracy']:.4f} |"
            )
        speedups = ", ".join(f"{k} **{v:.2f}×**" for k, v in block["speedups"].items())
        if speedups:  # none without a PyTorch contender
            lines += ["", f"aejax speed-up (PyTorch wall / aejax wall): {speedups}."]
        lines.append("")
    lines += _breakdown_table(record["summary"])
    lines += ["", f"Machine: {machine.summary_line(record['machine'])}.", ""]
    lines.append(f"Command: `{record['command']}`")
    return "\n".join(lines) + "\n"


def _breakdown_table(summary: dict) -> list[str]:
    columns = [
        (epochs, name, block["contenders"][name]["breakdown"])
        for epochs, block in summary.items()
        for name in OURS
        if name in block["contenders"]
    ]
    head = " | ".join(f"{name} {e}+{e}" for e, name, _ in columns)
    lines = ["Where aejax's wall time goes (seconds, medians):", "", f"| phase | {head} |"]
    lines.append("|---|" + "---:|" * len(columns))
    for key, label in BREAKDOWN.items():
        lines.append(f"| {label} | " + " | ".join(f"{b[key]:.2f}" for _, _, b in columns) + " |")
    walls = " | ".join(f"{summary[e]['contenders'][n]['wall_s']:.2f}" for e, n, _ in columns)
    lines.append(f"| **wall** | {walls} |")
    fixed = " | ".join(f"{summary[e]['contenders'][n]['fixed_s']:.2f}" for e, n, _ in columns)
    lines.append(f"| **fixed cost** (wall − imports − Σ epochs and their tests) | {fixed} |")
    return lines


def benchmark(args) -> str:
    from aejax.errors import UserError

    if args.rounds < 1 or min(args.epochs) < 1:
        raise UserError("rounds and epochs must be at least 1", settings=("rounds", "epochs"))
    contenders = _contenders(args)
    runs = []
    with tempfile.TemporaryDirectory(prefix="time_to_result-") as scratch:
        for epochs, r, order in schedule(args.epochs, args.rounds, contenders):
            for name in order:
                # Empty: the cold run fills it; each checkout its own.
                cache = Path(scratch) / f"cache-{name.split('-')[0]}-{epochs}-{r}"
                print(f"{epochs}+{epochs} epochs, round {r}: {name} ...", flush=True)
                runs.append(run_one(args, name, epochs, Path(scratch), cache))
                print(f"  {runs[-1]['wall_s']:.1f} s", flush=True)
    record = {
        "command": args.command,
        "machine": machine.describe(),
        "rounds": args.rounds,
        "baseline": _described(args.baseline),
        "summary": summarize(runs),
        "runs": runs,
    }
    return results.write(args, record, markdown(record))


def _contenders(args) -> tuple[str, ...]:
    """Whom to run: those asked for (all, by default; the baseline's with ``--baseline``)."""
    from aejax.errors import UserError

    every = (*CONTENDERS, *BASELINE) if args.baseline else CONTENDERS
    chosen = tuple(args.contenders or every)
    if args.baseline is not None and not (args.baseline / "aejax" / "__init__.py").is_file():
        raise UserError(f"{args.baseline} is not a checkout of aejax", settings=("baseline",))
    if any(c in BASELINE for c in chosen) and args.baseline is None:
        raise UserError("before-cold and before-warm need --baseline", settings=("contenders",))
    if any(c.endswith("-warm") and c.replace("-warm", "-cold") not in chosen for c in chosen):
        raise UserError(
            "a warm run needs its cold run (it fills the cache)", settings=("contenders",)
        )
    return chosen


def _described(baseline: Path | None) -> dict | None:
    """The baseline checkout and its commit, as git names it (None without one)."""
    if baseline is None:
        return None
    done = subprocess.run(
        ["git", "-C", str(baseline), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    )
    return {"path": str(baseline), "commit": done.stdout.strip() or None}


def main(argv=None) -> int:
    parser = results.parser(__doc__, "time_to_result")
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 10], help="of each stage")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per process")
    parser.add_argument(
        "--baseline", type=Path, help="another aejax checkout, run as before-cold/before-warm"
    )
    parser.add_argument(
        "--contenders", nargs="+", choices=[*CONTENDERS, *BASELINE], help="default: all there are"
    )
    return results.run(benchmark, parser, "time_to_result.py", argv)


if __name__ == "__main__":
    sys.exit(main())
