"""Does pretraining, or generating data with the autoencoder, help? Test accuracy vs labels.

Example: python scripts/label_budget.py --labels 100,1000,10000,all --seeds 5 \\
    --dataset fashion_mnist --out runs/label_budget
"""

import sys

from aejax import commands

if __name__ == "__main__":
    sys.exit(commands.main(["study", *sys.argv[1:]], prog="label_budget.py"))
