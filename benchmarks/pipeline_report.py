"""Collect a finished pipeline run into benchmarks/results/ and write its Markdown table.

    python benchmarks/pipeline_report.py runs/fashion_mnist --name pipeline_fashion_mnist \
        --command "bash scripts/run_pipeline.sh"

Copies both stages' metrics.json and figures, adds the machine description, and writes
``<name>.json``, ``<name>.md`` and ``<name>/*.png`` for README.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import machine
from results import RESULTS

# Per-epoch histories travel with the figures, so every quoted epoch time can be traced.
FIGURES = {
    "pretrain": ("curves.png", "reconstructions.png", "metrics.jsonl"),
    "finetune": ("curves.png", "metrics.jsonl"),
}


def collect(workdir: Path, name: str, command: str) -> dict:
    """Both stages' final metrics and the machine, as one record; figures copied beside it."""
    record = {"command": command, "machine": machine.describe()}
    figures = RESULTS / name
    figures.mkdir(parents=True, exist_ok=True)
    for stage, files in FIGURES.items():
        record[stage] = json.loads((workdir / stage / "metrics.json").read_text())
        for file in files:
            shutil.copy(workdir / stage / file, figures / f"{stage}_{file}")
    return record


def table(record: dict) -> str:
    """The README table of one pipeline run."""
    pre, fine = record["pretrain"], record["finetune"]
    rows = [
        ("dataset", f"{pre['dataset']} ({pre['num_train']} train / {pre['num_test']} test)"),
        ("epochs (pretrain + fine-tune)", f"{pre['epochs']} + {fine['epochs']}"),
        ("pretrain test MSE (pixels in [-1, 1])", f"{pre['test_mse']:.4f}"),
        ("fine-tuned test accuracy", f"{100 * fine['test_accuracy']:.2f} %"),
        ("fine-tuned test loss", f"{fine['test_loss']:.4f}"),
        ("autoencoder epoch, steady state", f"{pre['seconds_per_epoch']:.3f} s"),
        ("autoencoder examples/s", f"{pre['examples_per_s']:,.0f}"),
        ("classifier epoch, steady state", f"{fine['seconds_per_epoch']:.3f} s"),
        ("compile (pretrain / fine-tune)", f"{pre['compile_s']:.2f} s / {fine['compile_s']:.2f} s"),
        (
            "stage wall time (pretrain / fine-tune)",
            f"{pre['wall_s']:.1f} s / {fine['wall_s']:.1f} s",
        ),
    ]
    cpu = record["machine"]
    lines = ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    lines.append(f"| machine | {cpu['cpu_model']}, {cpu['usable_cpus']} cores, {pre['backend']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--command", required=True, help="the command that produced the run")
    args = parser.parse_args()
    record = collect(args.workdir, args.name, args.command)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(table(record))
    print(table(record))
