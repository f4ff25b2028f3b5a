"""Check that a dataset can be loaded: prints where it comes from, or one line why not (exit 2)."""

import argparse
import sys

from aejax.configs import DATASETS, SOURCES, DataConfig
from aejax.data import load_dataset
from aejax.errors import UserError

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="mnist", choices=DATASETS)
    parser.add_argument("--source", default="auto", choices=SOURCES)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    try:
        data = load_dataset(DataConfig(args.dataset, args.source, args.data_dir))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(data.describe())
