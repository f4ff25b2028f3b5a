"""Does pretraining, or generating data with the autoencoder, help? Test accuracy vs labels.

Example: python scripts/label_budget.py --labels 100,1000,10000,all --seeds 5 \\
    --dataset fashion_mnist --out runs/label_budget
"""

import sys

from aejax import cli
from aejax.research.label_budget import LabelBudgetConfig, parse_budgets, run_study
from aejax.research.label_budget_report import markdown_table, write_outputs
from aejax.research.methods import parse_methods


def main(args) -> dict:
    args.budgets = parse_budgets(args.budgets)
    if args.method_names is not None:
        args.method_names = parse_methods(args.method_names)
    config = cli.config_from_args(LabelBudgetConfig, args)
    result = run_study(config, progress=cli.progress(args), devices=args.devices)
    paths = write_outputs(result, args.out)
    print(markdown_table(result))
    return {"outputs": paths, "wall_s": result["wall_s"]}


if __name__ == "__main__":
    sys.exit(cli.run(main, cli.label_budget_parser()))
