"""The whole pipeline in one process: pretrain -> transplant -> fine-tune -> figures.

Example: python scripts/pipeline.py --dataset fashion_mnist --epochs 10

Takes both stages' flags. The data is loaded once and JAX imported once; each stage resumes as
scripts/pretrain.py and scripts/finetune.py would. Writes WORKDIR/pipeline.json: both stages'
metrics and where the process's time went.
"""

import time

STARTED = time.perf_counter()  # before the heavy imports, so their cost is measured too
STARTED_AT = time.time()  # the same moment on the wall clock, for whoever launched this process

import sys  # noqa: E402

import aejax  # noqa: E402
from aejax import cli, plots  # noqa: E402
from aejax.compile_cache import count_compiles  # noqa: E402
from aejax.errors import DataError  # noqa: E402
from aejax.workdir import write_json  # noqa: E402

IMPORTS_S = time.perf_counter() - STARTED


def load_data(args) -> aejax.Dataset:
    """The dataset the flags name, or the fallback dataset (said in one line) if it cannot load."""
    try:
        return aejax.load_dataset(cli.config_from_args(aejax.DataConfig, args))
    except DataError as err:
        if args.fallback_dataset in (None, args.dataset):
            raise
        fallback = args.fallback_dataset
        notice = f"{args.dataset} is not available here ({err}); using {fallback} instead."
        print(notice, file=sys.stderr)
        args.dataset = args.fallback_dataset
        return aejax.load_dataset(cli.config_from_args(aejax.DataConfig, args))


def main(args) -> dict:
    started = time.perf_counter()
    data = load_data(args)
    data_s = time.perf_counter() - started
    args.workdir = args.workdir or f"runs/{args.dataset}"
    pre = cli.config_from_args(aejax.PretrainConfig, args)
    fine = cli.config_from_args(aejax.FinetuneConfig, args)
    with count_compiles() as compiled:
        result = aejax.run_pipeline(pre, fine, data, **cli.stage_options(args))
    waited = time.perf_counter()
    plots.wait_for_figures()  # the last ones, drawn aside while the run finished
    record = {
        "dataset": data.name,
        "workdir": args.workdir,
        "started_at": STARTED_AT,
        "imports_s": IMPORTS_S,
        "data_s": data_s,
        "figures_wait_s": time.perf_counter() - waited,  # besides each stage's figures_s
        "process_s": time.perf_counter() - STARTED,  # from before the imports to here
        "programs": compiled.requests,  # XLA programs the run needed
        "compiled": compiled.compiled,  # of which compiled afresh, not found in the compile cache
        "pretrain": result.pretrain.metrics,
        "finetune": result.finetune.metrics,
    }
    write_json(pre.stage_dir.parent / "pipeline.json", record)
    return record


if __name__ == "__main__":
    sys.exit(cli.run(main, cli.pipeline_parser(), draw_aside=True))
