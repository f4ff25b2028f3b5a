"""Latent PCA scatter (DIR/latents.png) for each pretrain folder, and a reconstruction grid.

Example: python scripts/inspect_pretrained.py runs/mse/pretrain runs/bce/pretrain \\
    --dataset fashion_mnist --grid runs/variants.png
"""

import argparse
import sys

from aejax import cli
from aejax.configs import DATASETS, SOURCES, DataConfig
from aejax.data import load_dataset
from aejax.inspection import save_latents, save_variant_grid


def main(args) -> dict:
    data = load_dataset(DataConfig(args.dataset, args.source, args.data_dir))
    written = [str(save_latents(folder, data)) for folder in args.pretrain_dirs]
    if args.grid:
        written.append(str(save_variant_grid(args.pretrain_dirs, data, args.grid)))
    return {"written": written}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "pretrain_dirs", nargs="+", help="pretrain stage folders (WORKDIR/pretrain)"
    )
    parser.add_argument("--grid", default=None, help="also write a reconstruction grid here")
    parser.add_argument("--dataset", default="fashion_mnist", choices=DATASETS)
    parser.add_argument("--source", default="auto", choices=SOURCES)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sys.exit(cli.run(main, parser.parse_args()))
