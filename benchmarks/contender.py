"""One contender of compare_torch.py, alone in its process so that its memory and time are its own.

    python benchmarks/contender.py aejax --dataset fashion_mnist --data-dir DIR --epochs 3 \\
        --seed 0 --workdir runs/compare_torch --out result.json

Contenders: ``aejax`` (the library's pretrain + finetune), the PyTorch styles of
torch_reference.STYLES, and ``peak`` (dense matmul GFLOP/s). Writes one JSON object to --out.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

CONTENDERS = ("aejax", "as_written", "eager", "compiled")


def run_aejax(args) -> dict:
    """Both stages through aejax's own entry points, in a fresh workdir (nothing to resume)."""
    import aejax

    data_config = aejax.DataConfig(
        dataset=args.dataset,
        source="idx",
        data_dir=args.data_dir,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
    )
    data = aejax.load_dataset(data_config)
    workdir = tempfile.mkdtemp(prefix="aejax-", dir=_mkdir(args.workdir))
    train = aejax.TrainConfig(epochs=args.epochs, seed=args.seed, keep_checkpoints=1)
    result = {}
    try:
        stages = (
            ("pretrain", aejax.pretrain_config, aejax.pretrain),
            ("finetune", aejax.finetune_config, aejax.finetune),
        )
        for stage, make_config, run in stages:
            config = make_config(workdir=workdir, data=data_config, train=train)
            outcome = run(config, data, progress=False)
            test = {"loss": outcome.metrics["test_loss"]}
            if stage == "finetune":
                test["accuracy"] = outcome.metrics["test_accuracy"]
            result[stage] = {
                "epoch_seconds": [r["seconds"] for r in outcome.history],
                "train_loss": [r["train_loss"] for r in outcome.history],
                "test": test,
                "compile_s": outcome.metrics["compile_s"],
            }
        result["done_at"] = time.time()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {**result, "num_train": len(data.train_labels), "num_test": len(data.test_labels)}


def run_torch(args) -> dict:
    """The reference pipeline in one PyTorch input style."""
    import torch
    import torch_reference as ref

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.flush_denormal:  # saturated tanh outputs give denormal gradients, slow on x86
        torch.set_flush_denormal(True)
    data = ref.load_arrays(args.dataset, args.data_dir, args.train_limit, args.test_limit)
    root = None
    if args.contender == "as_written":
        root = ref.torchvision_root(args.dataset, args.data_dir, Path(args.workdir) / "torchvision")
    result = ref.run_pipeline(args.contender, data, args.epochs, args.seed, torchvision_dir=root)
    result["done_at"] = time.time()
    result["torch_threads"] = torch.get_num_threads()
    return {**result, "num_train": len(data.train_labels), "num_test": len(data.test_labels)}


def run_peak(args) -> dict:
    import machine

    return {"matmul_gflops": machine.matmul_peak_gflops(args.peak_size), "size": args.peak_size}


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="run one benchmark contender")
    add = parser.add_argument
    add("contender", choices=(*CONTENDERS, "peak"))
    add("--dataset", default="fashion_mnist")
    add("--data-dir", default="/usr/share/datasets/fashion-mnist")
    add("--epochs", type=int, default=3)
    add("--seed", type=int, default=0)
    add("--train-limit", type=int, default=None)
    add("--test-limit", type=int, default=None)
    add("--workdir", default="runs/compare_torch")
    add("--torch-threads", type=int, default=None)
    add("--flush-denormal", action="store_true", help="PyTorch: flush denormals to zero")
    add("--peak-size", type=int, default=2048)
    add("--out", required=True)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    runners = {"aejax": run_aejax, "peak": run_peak}
    result = runners.get(args.contender, run_torch)(args)
    # Linux reports KiB; children are DataLoader workers (only the "as_written" style has any).
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["children_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


def _mkdir(path: str) -> str:
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
