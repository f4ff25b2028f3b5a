"""Stage 1: pretrain the autoencoder. Example: python scripts/pretrain.py --dataset fashion_mnist

Variants: --loss bce (sigmoid output, [0, 1] targets); --noise gaussian:0.5 or --noise mask:0.3
(denoising: corrupted inputs, clean targets).
"""

import sys

from aejax import commands

if __name__ == "__main__":
    sys.exit(commands.main(["pretrain", *sys.argv[1:]], prog="pretrain.py"))
