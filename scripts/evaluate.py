"""Evaluate the newest checkpoint of a stage folder on its test split (metrics as JSON).

Example: python scripts/evaluate.py runs/fashion_mnist/finetune
"""

import sys

from aejax import cli
from aejax.evaluation import evaluate_stage


def main(args) -> dict:
    return evaluate_stage(args.stage_dir)


if __name__ == "__main__":
    sys.exit(cli.run(main, cli.evaluate_parser()))
