"""Does pretraining help? Test accuracy vs number of labels, scratch vs pretrained encoders.

Example: python scripts/label_budget.py --labels 100,1000,10000,all --seeds 5 \\
    --dataset fashion_mnist --out runs/label_budget
"""

import argparse
import sys

from aejax import cli
from aejax.configs import DATASETS, SOURCES, DataConfig, ModelConfig
from aejax.study import StudyConfig, parse_budgets, run_study
from aejax.study_report import markdown_table, write_outputs


def main(args) -> dict:
    config = StudyConfig(
        budgets=parse_budgets(args.labels),
        seeds=args.seeds,
        model=ModelConfig(hidden=args.hidden, latent=args.latent),
        data=DataConfig(args.dataset, args.source, args.data_dir, test_limit=args.test_limit),
        pretrain_epochs=args.pretrain_epochs,
        epochs=args.epochs,
        min_steps=args.min_steps,
        lr=args.lr,
        encoder_lr_scale=args.encoder_lr_scale,
        timing_seeds=args.timing_seeds,
    )
    result = run_study(config, progress=not args.no_progress)
    paths = write_outputs(result, args.out)
    print(markdown_table(result))
    return {"outputs": paths, "timing": result["timing"], "wall_s": result["wall_s"]}


if __name__ == "__main__":
    default = StudyConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add(
        "--labels",
        default="100,1000,10000,all",
        help="comma-separated budgets; 'all' = every label",
    )
    add("--seeds", type=int, default=default.seeds)
    add("--dataset", default="fashion_mnist", choices=DATASETS)
    add("--source", default="auto", choices=SOURCES)
    add("--data-dir", default=None)
    add("--test-limit", type=int, default=None, help="evaluate on the first N test examples")
    add("--pretrain-epochs", type=int, default=default.pretrain_epochs)
    add("--epochs", type=int, default=default.epochs, help="fine-tuning epochs (at least)")
    add("--min-steps", type=int, default=default.min_steps, help="fine-tuning steps (at least)")
    add("--lr", type=float, default=default.lr)
    add("--encoder-lr-scale", type=float, default=default.encoder_lr_scale)
    add("--hidden", type=int, default=default.model.hidden)
    add("--latent", type=int, default=default.model.latent)
    add("--timing-seeds", type=int, default=default.timing_seeds, help="0 skips the timing")
    add("--out", default="runs/label_budget", help="folder for label_budget.{json,md,png}")
    add("--no-progress", action="store_true")
    add("--debug", action="store_true", help="show tracebacks for user errors")
    sys.exit(cli.run(main, parser.parse_args()))
