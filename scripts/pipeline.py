"""The whole pipeline in one process: pretrain -> transplant -> fine-tune -> figures.

Example: python scripts/pipeline.py --dataset fashion_mnist --epochs 10

Takes both stages' flags; --pretrain-NAME and --finetune-NAME (epochs, batch size, lr, seed)
give one stage its own value. The data is loaded once and JAX imported once; each stage resumes as
scripts/pretrain.py and scripts/finetune.py would. Writes WORKDIR/pipeline.json: both stages'
metrics and where the process's time went.
"""

import time

STARTED = time.perf_counter()  # before the heavy imports, so their cost is measured too
STARTED_AT = time.time()  # the same moment on the wall clock, for whoever launched this process

import dataclasses  # noqa: E402
import sys  # noqa: E402

import aejax  # noqa: E402
from aejax import cli  # noqa: E402
from aejax.engine.compile_cache import count_compiles  # noqa: E402
from aejax.errors import DataError  # noqa: E402
from aejax.figures import plots  # noqa: E402
from aejax.run.workdir import write_json  # noqa: E402

IMPORTS_S = time.perf_counter() - STARTED


def load_data(args) -> tuple[aejax.Dataset, aejax.DataConfig]:
    """The dataset the flags name, or the fallback dataset (said in one line) if it cannot load;
    with the data config that loaded it."""
    config = cli.config_from_args(aejax.DataConfig, args)
    try:
        return aejax.load_dataset(config), config
    except DataError as err:
        if args.fallback_dataset in (None, config.dataset):
            raise
        fallback = dataclasses.replace(config, dataset=args.fallback_dataset)
        notice = (
            f"{config.dataset} is not available here ({err}); using {fallback.dataset} instead."
        )
        print(notice, file=sys.stderr)
        return aejax.load_dataset(fallback), fallback


def stage_configs(args, data: aejax.DataConfig):
    """Both stages' configs: the shared flags, each stage's own (--pretrain-lr, ...) over them."""
    workdir = args.workdir or f"runs/{data.dataset}"
    chosen = {"workdir": workdir, **dataclasses.asdict(data)}
    pre = cli.config_from_args(aejax.PretrainConfig, args, prefix="pretrain", **chosen)
    fine = cli.config_from_args(aejax.FinetuneConfig, args, prefix="finetune", **chosen)
    return pre, fine


def main(args) -> dict:
    started = time.perf_counter()
    data, data_config = load_data(args)
    data_s = time.perf_counter() - started
    pre, fine = stage_configs(args, data_config)
    with count_compiles() as compiled:
        result = aejax.run_pipeline(pre, fine, data, options=cli.run_options(args))
    waited = time.perf_counter()
    plots.wait_for_figures()  # the last ones, drawn aside while the run finished
    record = {
        "dataset": data.name,
        "workdir": pre.workdir,
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
