"""Many seeds in one vmapped program against one seed alone: does batching seeds pay here?

    python benchmarks/multi_seed_speed.py --dataset fashion_mnist \\
        --data-dir /usr/share/datasets/fashion-mnist --seeds 8

Times the label-budget study's 1000-label scratch cell (every parameter training, the same work as
pretrained-full) once with 1 seed and once with N seeds vmapped (`aejax.research.multi_seed`),
each compiled first and then run twice, keeping the faster run. A loop over seeds would cost
N x the one-seed time, so ``speed_vs_loop = N * one_seed_s / vmapped_s`` (> 1: vmapping pays).
Writes ``results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import math
import sys
import time

import machine
import results


def time_cell(config, data, seeds: int) -> dict:
    """Compile and run the 1000-label scratch cell for `seeds` seeds; seconds of the faster run."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from aejax.model.models import make_classifier
    from aejax.model.objectives import classification_metrics
    from aejax.research import label_budget as lb
    from aejax.research import multi_seed

    budget = min(1000, len(data.train.labels))
    seed_list = list(range(seeds))
    indices = jnp.asarray(lb.budget_indices(np.asarray(data.train.labels), budget, seed_list))
    keys = multi_seed.seed_keys(seed_list, lb.CLF_EPOCHS)
    model = make_classifier(config.model)
    params = multi_seed.init_params(model, data.train.images.shape[1], keys)
    _, states = lb.classifier_states(config, config.methods()["scratch"], params, None)
    metrics_fn = classification_metrics(model.apply)
    batch, epochs = min(config.batch_size, budget), lb.epochs_for(budget, config)
    start = time.perf_counter()
    run = multi_seed.compile_run(metrics_fn, states, data.train, keys, indices, batch, epochs)
    compile_s, best = time.perf_counter() - start, math.inf
    for _ in range(2):  # the first call may still pay for allocation; keep the faster one
        fresh = jax.block_until_ready(jax.tree.map(jnp.copy, states))  # runs donate their state
        start = time.perf_counter()
        jax.block_until_ready(run(fresh, *data.train, keys, indices))
        best = min(best, time.perf_counter() - start)
    steps = epochs * math.ceil(budget / batch)
    return {"seeds": seeds, "seconds": best, "compile_s": compile_s, "steps": steps}


def measure(args) -> dict:
    """One seed, then `args.seeds` seeds, on the same cell; the record written to results/."""
    import jax

    import aejax
    from aejax.research.label_budget import LabelBudgetConfig

    if args.seeds < 2:
        raise aejax.UserError(
            f"compare at least 2 seeds with 1, got {args.seeds}", settings=("seeds",)
        )
    data_config = aejax.DataConfig(args.dataset, data_dir=args.data_dir)
    config = LabelBudgetConfig(data=data_config)
    data = aejax.to_device(aejax.load_dataset(data_config))
    one, many = time_cell(config, data, 1), time_cell(config, data, args.seeds)
    return {
        "command": args.command,
        "machine": machine.describe(),
        "backend": jax.default_backend(),
        "one_seed": one,
        "many_seeds": many,
        "ratio_vs_one_seed": many["seconds"] / one["seconds"],
        "speed_vs_loop": args.seeds * one["seconds"] / many["seconds"],
    }


def summary(record: dict) -> str:
    """One sentence that says whether vmapping the seeds paid."""
    seeds, speed = record["many_seeds"]["seeds"], record["speed_vs_loop"]
    verdict = "faster" if speed > 1 else "slower"
    return (
        f"{seeds} seeds in one vmapped program took {record['ratio_vs_one_seed']:.2f}x the wall "
        f"time of 1 seed: {speed:.2f}x the speed of a loop over the seeds ({verdict}); "
        f"machine: {machine.summary_line(record['machine'])}, backend {record['backend']}."
    )


def benchmark(args) -> str:
    record = measure(args)
    return results.write(args, record, summary(record) + "\n")


def main(argv=None) -> int:
    parser = results.parser(__doc__, "multi_seed_speed")
    parser.add_argument("--seeds", type=int, default=8, help="seeds of the vmapped run")
    return results.run(benchmark, parser, "multi_seed_speed.py", argv)


if __name__ == "__main__":
    sys.exit(main())
