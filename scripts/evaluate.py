"""Evaluate the newest checkpoint of a stage folder on its test split (metrics as JSON).

Example: python scripts/evaluate.py runs/fashion_mnist/finetune
"""

import sys

from aejax import commands

if __name__ == "__main__":
    sys.exit(commands.main(["evaluate", *sys.argv[1:]], prog="evaluate.py"))
