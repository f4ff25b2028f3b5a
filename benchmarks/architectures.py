"""The conv architecture against the MLP on the same data: accuracy and epoch time, per seed.

    python benchmarks/architectures.py --dataset fashion_mnist \\
        --data-dir /usr/share/datasets/fashion-mnist --seeds 3 --name architectures_fashion_mnist

Each seed runs the whole pipeline (pretrain 10 epochs, transplant, fine-tune 10 epochs: the
reference recipe, only ``--arch`` differs) for both architectures, one after the other in one
process, so that the epoch times compare. Epoch time is the median of the epochs after the first
(which holds no compile: that is timed apart). Writes ``results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import machine
import results

ARCHITECTURES = ("mlp", "conv")


def one_pipeline(args: argparse.Namespace, arch: str, seed: int, workdir: Path) -> dict:
    """One seed's pipeline with `arch`: what each stage reached and how long its epochs took."""
    import aejax

    data = aejax.DataConfig(dataset=args.dataset, data_dir=args.data_dir)
    model = aejax.ModelConfig(arch=arch)
    train = aejax.TrainConfig(epochs=args.epochs, seed=seed)
    stages = aejax.run_pipeline(
        aejax.PretrainConfig(str(workdir), model, data, train),
        aejax.FinetuneConfig(str(workdir), model, data, train),
        progress=False,
    )
    record = {"arch": arch, "seed": seed}
    for name, stage in (("pretrain", stages.pretrain), ("finetune", stages.finetune)):
        seconds = [row["seconds"] for row in stage.history]
        record[name] = {
            "epoch_s": statistics.median(seconds[1:] or seconds),
            "compile_s": stage.metrics["compile_s"],
            "test_loss": stage.metrics["test_loss"],
        }
    record["test_accuracy"] = stages.finetune.metrics["test_accuracy"]
    return record


def summarize(runs: list[dict]) -> dict[str, dict]:
    """Per architecture: accuracy and epoch times as mean and standard deviation over seeds."""
    summary = {}
    for arch in ARCHITECTURES:
        mine = [run for run in runs if run["arch"] == arch]
        figures = {
            "test_accuracy": [run["test_accuracy"] for run in mine],
            "pretrain_test_mse": [run["pretrain"]["test_loss"] for run in mine],
            "pretrain_epoch_s": [run["pretrain"]["epoch_s"] for run in mine],
            "finetune_epoch_s": [run["finetune"]["epoch_s"] for run in mine],
        }
        summary[arch] = {
            name: {
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            }
            for name, values in figures.items()
        }
    return summary


def table(record: dict) -> str:
    """The Markdown table docs/research.md quotes."""
    summary, seeds = record["summary"], record["seeds"]
    rows = [
        "| arch | test accuracy (%) | pretrain test MSE | pretrain epoch | fine-tune epoch |",
        "|---|---|---|---|---|",
    ]
    for arch in ARCHITECTURES:
        s = summary[arch]
        rows.append(
            f"| {arch} | {100 * s['test_accuracy']['mean']:.2f} ± "
            f"{100 * s['test_accuracy']['std']:.2f} | {s['pretrain_test_mse']['mean']:.4f} | "
            f"{s['pretrain_epoch_s']['mean']:.2f} s | {s['finetune_epoch_s']['mean']:.2f} s |"
        )
    ratio = summary["conv"]["pretrain_epoch_s"]["mean"] / summary["mlp"]["pretrain_epoch_s"]["mean"]
    rows += [
        "",
        f"{seeds} seeds each, {record['epochs']} + {record['epochs']} epochs, {record['dataset']}, "
        f"mean ± sample std over seeds. A conv autoencoder epoch takes {ratio:.1f}x the MLP's. "
        f"Machine: {machine.summary_line(record['machine'])}.",
        "",
    ]
    return "\n".join(rows)


def benchmark(args: argparse.Namespace) -> int:
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(args.seeds):
            for arch in ARCHITECTURES:
                runs.append(one_pipeline(args, arch, seed, Path(scratch) / f"{arch}{seed}"))
                print(f"seed {seed} {arch}: {runs[-1]}", file=sys.stderr, flush=True)
    record = {
        "command": args.command,
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "machine": machine.describe(),
        "runs": runs,
        "summary": summarize(runs),
    }
    print(results.write(args, record, table(record)))
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = results.parser(__doc__, "architectures")
    parser.add_argument("--seeds", type=int, default=3, help="pipelines per architecture")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each stage")
    return parser


if __name__ == "__main__":
    sys.exit(results.run(benchmark, make_parser(), "architectures.py"))
