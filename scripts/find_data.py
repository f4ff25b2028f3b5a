"""Check that a dataset can be loaded: prints where it comes from, or one line why not (exit 2).

With `--source auto` (the default) a dataset found nowhere on this machine is downloaded when its
host answers, so this also fetches the data ahead of a run.

Example: python scripts/find_data.py --dataset mnist
"""

import sys

from aejax import cli
from aejax.config import DataConfig
from aejax.data.datasets import load_dataset


def main(args) -> str:
    return load_dataset(cli.config_from_args(DataConfig, args)).describe()


if __name__ == "__main__":
    sys.exit(cli.run(main, cli.find_data_parser()))
