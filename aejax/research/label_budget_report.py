"""Writing the label-budget study's results: JSON, a Markdown table and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from aejax.figures import plots
from aejax.research import figures


def markdown_table(result: dict[str, Any]) -> str:
    """Test accuracy ``mean ± std`` (over seeds), one row per budget, one column per method."""
    cells = result["cells"]
    methods = list(dict.fromkeys(c["method"] for c in cells))
    budgets = list(dict.fromkeys(c["labels"] for c in cells))
    lines = [
        "| labels | " + " | ".join(methods) + " |",
        "|---:|" + "---:|" * len(methods),
    ]
    for budget in budgets:
        row = {c["method"]: c for c in cells if c["labels"] == budget}
        values = [f"{100 * row[m]['mean']:.1f} ± {100 * row[m]['std']:.1f}" for m in methods]
        lines.append(f"| {budget} | " + " | ".join(values) + " |")
    seeds = len(cells[0]["accuracy"])
    lines.append("")
    lines.append(f"Test accuracy (%) on {result['dataset']}, mean ± sample std over {seeds} seeds.")
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], out_dir: str | Path) -> dict[str, str]:
    """``label_budget.{json,md,png}`` in `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"label_budget.{k}" for k in ("json", "md", "png")}
    examples = result.get("examples")
    saved = {k: v for k, v in result.items() if k != "examples"}  # images: a figure, not JSON
    paths["json"].write_text(json.dumps(saved, indent=2) + "\n")
    if examples is not None:
        paths["generated"] = out / "generated.png"
        save_generated(examples, paths["generated"], result["dataset"])
    paths["md"].write_text(markdown_table(result))
    figures.save_label_budget(
        result["cells"], paths["png"], f"{result['dataset']}: does pretraining help?"
    )
    return {k: str(v) for k, v in paths.items()}


def save_generated(examples: dict[str, Any], path: Path, dataset: str) -> None:
    """One row per class: the real source, then its latent-mix and latent-noise generations."""
    rows = {}
    for c, real in enumerate(examples["real"]):
        parts = [real[None], examples["latent-mix"][c], examples["latent-noise"][c]]
        rows[f"class {c}"] = np.concatenate(parts)
    count = len(examples["latent-mix"][0])
    title = f"{dataset}: real | {count} latent-mix | {count} latent-noise (seed 0, 1st budget)"
    plots.save_image_rows(rows, path, title)
