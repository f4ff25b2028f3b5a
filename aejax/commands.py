"""The `aejax` command: ``aejax pretrain``, ``aejax finetune``, ``aejax pipeline``, ``aejax
evaluate``, ``aejax study``, ``aejax find-data`` and ``aejax inspect``, each with the flags and the
behaviour of its script in scripts/ (which call these same functions). ``python -m aejax`` is the
same command.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable
from typing import Any

import aejax
from aejax import cli
from aejax.engine.compile_cache import count_compiles
from aejax.errors import DataError
from aejax.figures import plots
from aejax.run.workdir import write_json


@dataclasses.dataclass(frozen=True)
class Clock:
    """When the process started (`started`: perf_counter; `started_at`: wall clock) and how long
    its imports took (None where the caller could not measure them)."""

    started: float
    started_at: float
    imports_s: float | None = None


def pretrain(args) -> dict:
    config = cli.config_from_args(aejax.PretrainConfig, args)
    return aejax.pretrain(config, options=cli.run_options(args)).metrics


def finetune(args) -> dict:
    config = cli.config_from_args(aejax.FinetuneConfig, args)
    return aejax.finetune(config, options=cli.run_options(args)).metrics


def pipeline(args, clock: Clock) -> dict:
    """Both stages in one process; writes and returns WORKDIR/pipeline.json's record."""
    started = time.perf_counter()
    data, data_config = _pipeline_data(args)
    data_s = time.perf_counter() - started
    pre, fine = _stage_configs(args, data_config)
    with count_compiles() as compiled:
        result = aejax.run_pipeline(pre, fine, data, options=cli.run_options(args))
    waited = time.perf_counter()
    plots.wait_for_figures()  # the last ones, drawn aside while the run finished
    record = {
        "dataset": data.name,
        "workdir": pre.workdir,
        "started_at": clock.started_at,
        "imports_s": clock.imports_s,
        "data_s": data_s,
        "figures_wait_s": time.perf_counter() - waited,  # besides each stage's figures_s
        "process_s": time.perf_counter() - clock.started,  # from the clock's start to here
        "programs": compiled.requests,  # XLA programs the run needed
        "compiled": compiled.compiled,  # of which compiled afresh, not found in the compile cache
        "pretrain": result.pretrain.metrics,
        "finetune": result.finetune.metrics,
    }
    write_json(pre.stage_dir.parent / "pipeline.json", record)
    return record


def _pipeline_data(args) -> tuple[aejax.Dataset, aejax.DataConfig]:
    """The dataset the flags name, or the fallback dataset (said in one line) if it cannot load;
    with the data config that loaded it."""
    config = cli.config_from_args(aejax.DataConfig, args)
    try:
        return aejax.load_dataset(config), config
    except DataError as err:
        if args.fallback_dataset in (None, config.dataset):
            raise
        fallback = dataclasses.replace(config, dataset=args.fallback_dataset)
        notice = f"{config.dataset} is not available here ({err}); using {fallback.dataset} "
        print(notice + "instead.", file=sys.stderr)
        return aejax.load_dataset(fallback), fallback


def _stage_configs(args, data: aejax.DataConfig):
    """Both stages' configs: the shared flags, each stage's own (--pretrain-lr, ...) over them."""
    workdir = args.workdir or f"runs/{data.name}"
    chosen = {"workdir": workdir, **dataclasses.asdict(data)}
    pre = cli.config_from_args(aejax.PretrainConfig, args, prefix="pretrain", **chosen)
    fine = cli.config_from_args(aejax.FinetuneConfig, args, prefix="finetune", **chosen)
    return pre, fine


def evaluate(args) -> dict:
    return aejax.evaluate_stage(args.stage_dir)


def find_data(args) -> str:
    return aejax.load_dataset(cli.config_from_args(aejax.DataConfig, args)).describe()


def study(args) -> dict:
    """The label-budget study; prints its table, returns where its outputs went."""
    from aejax.research.label_budget import LabelBudgetConfig, parse_budgets, run_study
    from aejax.research.label_budget_report import markdown_table, write_outputs
    from aejax.research.methods import parse_methods

    names = None if args.method_names is None else parse_methods(args.method_names)
    budgets = parse_budgets(args.budgets)
    config = cli.config_from_args(LabelBudgetConfig, args, budgets=budgets, method_names=names)
    result = run_study(config, progress=cli.progress(args), devices=args.devices)
    paths = write_outputs(result, args.out)
    print(markdown_table(result))
    return {"outputs": paths, "wall_s": result["wall_s"]}


def inspect(args) -> dict:
    """Latent scatters of pretrain folders, and a reconstruction grid of them."""
    from aejax.research.inspection import load_autoencoder, save_latents, save_variant_grid

    folders = args.pretrain_dirs
    # Without --dataset: the dataset the first folder was trained on.
    dataset = args.dataset or load_autoencoder(folders[0]).config.data.dataset
    data = aejax.load_dataset(cli.config_from_args(aejax.DataConfig, args, dataset=dataset))
    written = [str(save_latents(folder, data)) for folder in folders]
    if args.grid:
        written.append(str(save_variant_grid(folders, data, args.grid)))
    return {"written": written}


@dataclasses.dataclass(frozen=True)
class Command:
    """One subcommand: its parser (`aejax.cli.PARSERS`), what it runs, and whether its figures
    are drawn by a helper process."""

    parser: str
    run: Callable[..., Any]
    draw_aside: bool = False


COMMANDS = {
    "pretrain": Command("pretrain", pretrain, draw_aside=True),
    "finetune": Command("finetune", finetune, draw_aside=True),
    "pipeline": Command("pipeline", pipeline, draw_aside=True),
    "evaluate": Command("evaluate", evaluate),
    "study": Command("label_budget", study),
    "find-data": Command("find_data", find_data),
    "inspect": Command("inspect_pretrained", inspect),
}


def main(argv: list[str] | None = None, prog: str | None = None, clock: Clock | None = None):
    """Run ``aejax COMMAND [flags]``; the exit status (2 for a user error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return cli.USER_ERROR_EXIT
    if argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(f"aejax {aejax.__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(
            f"error: no command {name!r}; the commands are {', '.join(COMMANDS)}", file=sys.stderr
        )
        return cli.USER_ERROR_EXIT
    command = COMMANDS[name]
    parser = cli.PARSERS[command.parser]()
    parser.prog = prog or f"aejax {name}"
    run = command.run
    if run is pipeline:  # it reports where the process's time went, from `clock` on
        run = functools.partial(pipeline, clock=clock or Clock(time.perf_counter(), time.time()))
    return cli.run(run, parser, rest, draw_aside=command.draw_aside)


def usage() -> str:
    lines = [f"  {name:<10} {cli.PARSERS[c.parser]().description}" for name, c in COMMANDS.items()]
    return "\n".join(
        [
            "usage: aejax COMMAND [flags]   (aejax COMMAND --help: its flags and defaults)",
            "       aejax --version",
            "",
            "commands:",
            *lines,
        ]
    )
