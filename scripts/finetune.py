"""Stage 2: transplant the pretrained encoder into a classifier and fine-tune it.

Example (linear probe with early stopping):
  python scripts/finetune.py --dataset fashion_mnist --mode frozen --val-split 5000 --patience 3
"""

import sys

from aejax import commands

if __name__ == "__main__":
    sys.exit(commands.main(["finetune", *sys.argv[1:]], prog="finetune.py"))
