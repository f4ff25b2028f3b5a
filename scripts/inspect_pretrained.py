"""Latent PCA scatter (DIR/latents.png) for each pretrain folder, and a reconstruction grid.

Example: python scripts/inspect_pretrained.py runs/mse/pretrain runs/bce/pretrain \\
    --grid runs/variants.png
"""

import sys

from aejax import commands

if __name__ == "__main__":
    sys.exit(commands.main(["inspect", *sys.argv[1:]], prog="inspect_pretrained.py"))
