"""Check that a dataset can be loaded: prints where it comes from, or one line why not (exit 2).

With `--source auto` (the default) a dataset found nowhere on this machine is downloaded when its
host answers, so this also fetches the data ahead of a run.

Example: python scripts/find_data.py --dataset mnist
"""

import sys

from aejax import commands

if __name__ == "__main__":
    sys.exit(commands.main(["find-data", *sys.argv[1:]], prog="find_data.py"))
