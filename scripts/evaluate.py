"""Evaluate the newest checkpoint of a stage folder on its test split (metrics as JSON)."""

import argparse
import json
import sys

from absl import logging as absl_logging

from aejax.errors import UserError
from aejax.evaluation import evaluate_stage

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage_dir", help="a stage folder, e.g. runs/fashion_mnist/finetune")
    args = parser.parse_args()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        print(json.dumps(evaluate_stage(args.stage_dir), indent=2))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
