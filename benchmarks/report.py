"""Turn the per-run results of compare_torch.py into a summary, ratios and a Markdown table."""

from __future__ import annotations

import statistics

LABELS = {
    "aejax": "aejax (JAX)",
    "as_written": "PyTorch as written (torchvision + DataLoader)",
    "eager": "PyTorch eager, preloaded",
    "compiled": "PyTorch torch.compile, preloaded",
}
STAGES = ("pretrain", "finetune")


def steady_seconds(epoch_seconds_per_run: list[list[float]]) -> float:
    """Median epoch time over all runs, leaving out each run's first epoch (its warm-up)."""
    later = [s for run in epoch_seconds_per_run for s in run[1:]]
    return statistics.median(later or [s for run in epoch_seconds_per_run for s in run])


def first_epoch_seconds(result: dict, stage: str) -> float:
    """Time until the first epoch is done, compilation included (aejax compiles ahead of time)."""
    return result[stage].get("compile_s", 0.0) + result[stage]["epoch_seconds"][0]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: list[dict], ae_epoch_flops: float, peak_gflops: float) -> dict:
    """Per contender: steady s/epoch, examples/s, warm-up, GFLOP/s, wall, memory, quality."""
    summary = {}
    for name in LABELS:
        done = [r for r in runs if r["contender"] == name and r.get("result")]
        if not done:
            continue
        results = [r["result"] for r in done]
        row = {"runs": len(results), "seeds": sorted(r["seed"] for r in done)}
        num_train = results[0]["num_train"]
        for stage in STAGES:
            seconds = steady_seconds([r[stage]["epoch_seconds"] for r in results])
            row[f"{stage}_s_per_epoch"] = seconds
            row[f"{stage}_examples_per_s"] = num_train / seconds
            row[f"{stage}_first_epoch_s"] = statistics.median(
                first_epoch_seconds(r, stage) for r in results
            )
        row["ae_gflops"] = ae_epoch_flops / row["pretrain_s_per_epoch"] / 1e9
        row["ae_fraction_of_peak"] = row["ae_gflops"] / peak_gflops if peak_gflops else None
        row["wall_s"] = statistics.median(r["wall_s"] for r in done)
        row["peak_rss_mib"] = max(r["peak_rss_mib"] for r in results)
        row["children_peak_rss_mib"] = max(r["children_peak_rss_mib"] for r in results)
        row["test_mse"] = mean_std([r["pretrain"]["test"]["loss"] for r in results])
        row["test_accuracy"] = mean_std([r["finetune"]["test"]["accuracy"] for r in results])
        summary[name] = row
    return summary


def ratios(summary: dict) -> dict:
    """aejax against each PyTorch style; speed-ups > 1 mean aejax is faster."""
    if "aejax" not in summary:
        return {}
    ours = summary["aejax"]
    out = {}
    for name, theirs in summary.items():
        if name == "aejax":
            continue
        out[name] = {
            "pretrain_epoch_speedup": theirs["pretrain_s_per_epoch"] / ours["pretrain_s_per_epoch"],
            "finetune_epoch_speedup": theirs["finetune_s_per_epoch"] / ours["finetune_s_per_epoch"],
            "wall_speedup": theirs["wall_s"] / ours["wall_s"],
            "rss_aejax_over_torch": ours["peak_rss_mib"] / theirs["peak_rss_mib"],
            "accuracy_difference": ours["test_accuracy"][0] - theirs["test_accuracy"][0],
        }
    return out


def markdown(report: dict) -> str:
    """The report as Markdown: settings, a table per contender, a table of ratios, notes."""
    s, summary = report["settings"], report["summary"]
    lines = [
        f"### JAX vs PyTorch: {s['dataset']}, {s['num_train']} train / {s['num_test']} test, "
        f"{s['epochs']} epochs per stage, seeds {', '.join(map(str, s['seeds']))}",
        "",
        f"Machine: {report['machine_line']}. Dense fp32 matmul peak (XLA, "
        f"{report['peak']['size']}²): {report['peak']['gflops']:.0f} GFLOP/s. One autoencoder "
        f"epoch is {report['ae_epoch_gflop']:.1f} GFLOP of matmuls (forward + backward).",
        "",
        "| contender | AE s/epoch | AE first epoch s | AE examples/s | clf s/epoch "
        "| clf first epoch s | clf examples/s | AE GFLOP/s (% of peak) | pipeline wall s "
        "| peak RSS MiB | test MSE | test accuracy |",
        "|---|" + "---:|" * 11,
    ]
    for name, row in summary.items():
        share = row["ae_fraction_of_peak"]
        children = row["children_peak_rss_mib"]
        rss = f"{row['peak_rss_mib']:.0f}" + (f" (+{children:.0f} children)" if children else "")
        lines.append(
            f"| {LABELS[name]} | {row['pretrain_s_per_epoch']:.3f} "
            f"| {row['pretrain_first_epoch_s']:.2f} | {row['pretrain_examples_per_s']:,.0f} "
            f"| {row['finetune_s_per_epoch']:.3f} | {row['finetune_first_epoch_s']:.2f} "
            f"| {row['finetune_examples_per_s']:,.0f} "
            f"| {row['ae_gflops']:.1f}" + (f" ({share:.0%})" if share else "") + " "
            f"| {row['wall_s']:.1f} | {rss} | {_pm(row['test_mse'], 4)} "
            f"| {_pm(row['test_accuracy'], 4)} |"
        )
    if report["ratios"]:
        lines += [
            "",
            "| aejax vs | AE epoch speed-up | clf epoch speed-up | pipeline wall speed-up "
            "| peak RSS aejax / torch | accuracy aejax − torch |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, r in report["ratios"].items():
            lines.append(
                f"| {LABELS[name]} | {r['pretrain_epoch_speedup']:.1f}× "
                f"| {r['finetune_epoch_speedup']:.1f}× | {r['wall_speedup']:.1f}× "
                f"| {r['rss_aejax_over_torch']:.2f} | {r['accuracy_difference']:+.4f} |"
            )
    lines += ["", *_notes(report)]
    return "\n".join(lines) + "\n"


def _notes(report: dict) -> list[str]:
    notes = [
        "s/epoch: median of every epoch after each run's first; first epoch includes "
        "compilation (aejax compiles ahead of time, torch.compile during it). Pipeline wall: "
        "process start to final test accuracy, both stages. Peak RSS: the contender's main "
        "process; child processes (DataLoader or compile workers) separately. "
        "Accuracy/MSE: mean ± std over seeds.",
    ]
    for name, reason in report.get("skipped", {}).items():
        notes.append(f"Skipped {LABELS[name]}: {reason}")
    for name, reason in report.get("failed", {}).items():
        notes.append(f"Failed {LABELS[name]}: {reason}")
    notes.append(f"Command: `{report['command']}`")
    return ["- " + n for n in notes]


def _pm(values: tuple[float, float], digits: int) -> str:
    mean, std = values
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
