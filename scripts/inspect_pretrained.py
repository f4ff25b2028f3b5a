"""Latent PCA scatter (DIR/latents.png) for each pretrain folder, and a reconstruction grid.

Example: python scripts/inspect_pretrained.py runs/mse/pretrain runs/bce/pretrain \\
    --grid runs/variants.png
"""

import sys

from aejax import cli
from aejax.config import DataConfig
from aejax.data.datasets import load_dataset
from aejax.research.inspection import load_autoencoder, save_latents, save_variant_grid


def main(args) -> dict:
    if args.dataset is None:  # the dataset the first folder was trained on
        args.dataset = load_autoencoder(args.pretrain_dirs[0]).config.data.dataset
    data = load_dataset(cli.config_from_args(DataConfig, args))
    written = [str(save_latents(folder, data)) for folder in args.pretrain_dirs]
    if args.grid:
        written.append(str(save_variant_grid(args.pretrain_dirs, data, args.grid)))
    return {"written": written}


if __name__ == "__main__":
    sys.exit(cli.run(main, cli.inspect_parser()))
