"""What the benchmark scripts share: their common flags, how they run, where results go.

Each script writes ``results/<name>.json`` (everything measured, with the command and machine)
and ``results/<name>.md`` (the table README quotes).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    """--dataset, --data-dir, --name, --results-dir and --debug; the docstring's first line.

    An aejax `FlagParser`, so that `run` can name the flag behind a user error.
    """
    from aejax.flags import FlagParser

    made = FlagParser(description=doc.split("\n")[0])
    made.add_argument("--dataset", default="fashion_mnist", choices=["mnist", "fashion_mnist"])
    made.add_argument("--data-dir", default=None, help="folder of the IDX files")
    made.add_argument("--name", default=name, help="stem of the results files")
    made.add_argument("--results-dir", type=Path, default=RESULTS)
    made.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    return made


def run(benchmark: Callable, made: argparse.ArgumentParser, script: str, argv=None) -> int:
    """Run `benchmark(args)` as aejax's scripts run (user errors: one line, exit 2); the
    command line that produced the results is recorded as ``args.command``."""
    from aejax import cli

    given = sys.argv[1:] if argv is None else argv
    made.set_defaults(command=" ".join(["python", f"benchmarks/{script}", *given]))
    return cli.run(benchmark, made, argv)


def write(args: argparse.Namespace, record: dict, table: str) -> str:
    """``<name>.json`` and ``<name>.md`` in the results folder; returns `table`."""
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.results_dir / f"{args.name}.md").write_text(table)
    return table
