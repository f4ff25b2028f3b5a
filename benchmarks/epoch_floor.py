"""Where the autoencoder epoch's time goes: aejax's epoch against its matmuls alone.

    python benchmarks/epoch_floor.py --dataset fashion_mnist \\
        --data-dir /usr/share/datasets/fashion-mnist --rounds 10 --name epoch_floor

In one process, one epoch of each per round, alternating (this machine's speed drifts, so only
figures taken side by side compare):

- ``aejax``: the library's compiled autoencoder epoch (device-resident data, one ``lax.scan`` of
  Adam steps), exactly as ``aejax.pretrain`` runs it;
- ``xla_matmuls``: the same step's eleven matmuls (forward, weight gradients, input gradients)
  and nothing else but a weight update, in one ``lax.scan``: what XLA's matmuls alone cost;
- ``torch_matmuls`` (when torch imports): the same matmuls with ``torch.mm`` into preallocated
  outputs, a vendor BLAS (MKL in PyTorch's CPU wheels) on the same cores.

The matmul contenders multiply random float32 arrays: their values do not affect speed. Writes
``results/<name>.json`` and ``results/<name>.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import machine
import results

LR = 1e-6  # the matmul-only updates keep the weights moving without letting them blow up


def aejax_epoch(dataset: str, data_dir: str | None, limit: int | None, batch_size: int):
    """A zero-argument callable running one aejax autoencoder epoch, compiled, and its size."""
    import jax
    import optax

    import aejax
    from aejax.engine.epochs import compile_stage
    from aejax.engine.train import create_state
    from aejax.model import objectives

    config = aejax.DataConfig(dataset=dataset, data_dir=data_dir, train_limit=limit)
    data = aejax.load_dataset(config)
    model = aejax.make_autoencoder(aejax.ModelConfig(), data.input_dim)
    metrics_fn = objectives.reconstruction_metrics(model.apply, aejax.ObjectiveConfig())
    state = create_state(model, data.input_dim, optax.adam(1e-3), jax.random.key(0))
    device_data = aejax.to_device(data)
    key = jax.random.key(1)
    # The same compiled epoch program that aejax.pretrain trains with.
    compiled = compile_stage(metrics_fn, state, device_data, batch_size, key).epoch
    return (
        epoch_runner(compiled, state, device_data.train, key),
        len(data.train_labels),
        data.input_dim,
    )


def epoch_runner(compiled_epoch, state, train, key):
    """A zero-argument callable that trains one more epoch with `compiled_epoch` (a compiled
    `aejax.engine.train` epoch program) and waits for it; each epoch draws its key from `key`."""
    import jax

    box = {"state": state, "epoch": 0}

    def run():
        box["epoch"] += 1
        epoch_key = jax.random.fold_in(key, box["epoch"])
        box["state"], metrics = compiled_epoch(box["state"], *train, epoch_key)
        jax.block_until_ready(metrics)

    return run


def xla_matmuls(layers, steps: int, batch_size: int):
    """One ``lax.scan`` of `steps` steps of the autoencoder's matmuls alone."""
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.key(0), len(layers) + 1)
    pairs = zip(keys[:-1], layers, strict=True)
    weights = tuple(jax.random.normal(k, shape) / shape[0] ** 0.5 for k, shape in pairs)
    inputs = jax.random.normal(keys[-1], (steps, batch_size, layers[0][0]), jnp.float32)

    def step(weights, x):
        activations = [x]
        for w in weights:
            activations.append(activations[-1] @ w)
        grad_out, grads = activations[-1], []
        for i in reversed(range(len(weights))):
            grads.append(activations[i].T @ grad_out)
            if i:  # the image needs no gradient
                grad_out = grad_out @ weights[i].T
        grads.reverse()
        return tuple(w - LR * g for w, g in zip(weights, grads, strict=True)), None

    compiled = jax.jit(lambda w, x: jax.lax.scan(step, w, x)[0]).lower(weights, inputs).compile()
    box = {"weights": weights}

    def run():
        box["weights"] = jax.block_until_ready(compiled(box["weights"], inputs))

    return run


def torch_matmuls(layers, steps: int, batch_size: int):
    """The same matmuls with ``torch.mm`` into preallocated outputs, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(*shape, generator=generator) / shape[0] ** 0.5 for shape in layers]
    inputs = torch.randn(steps, batch_size, layers[0][0], generator=generator)
    activations = [None] + [torch.empty(batch_size, fan_out) for _, fan_out in layers]
    grads_in = [torch.empty(batch_size, fan_in) for fan_in, _ in layers]
    grads_w = [torch.empty(*shape) for shape in layers]

    @torch.no_grad()
    def run():
        for x in inputs:
            activations[0] = x
            for i, w in enumerate(weights):
                torch.mm(activations[i], w, out=activations[i + 1])
            grad_out = activations[-1]
            for i in reversed(range(len(weights))):
                torch.mm(activations[i].T, grad_out, out=grads_w[i])
                if i:
                    grad_out = torch.mm(grad_out, weights[i].T, out=grads_in[i])
            for w, g in zip(weights, grads_w, strict=True):
                w.sub_(g, alpha=LR)

    return run


def measure(contenders: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per epoch of each contender, one epoch each per round, after one warm-up each."""
    for run in contenders.values():
        run()
    seconds = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def summarize(seconds: dict[str, list[float]], epoch_flops: float) -> dict[str, dict]:
    """Median and best epoch per contender, their GFLOP/s, and each median relative to aejax's."""
    base = statistics.median(seconds["aejax"])
    return {
        name: {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "gflops_at_median": epoch_flops / statistics.median(times) / 1e9,
            "fraction_of_aejax": statistics.median(times) / base,
        }
        for name, times in seconds.items()
    }


LABELS = {
    "aejax": "aejax epoch (Adam, loss, data, everything)",
    "xla_matmuls": "its matmuls alone, XLA",
    "torch_matmuls": "its matmuls alone, PyTorch `torch.mm`",
}


def table(record: dict) -> str:
    """The Markdown table of one run."""
    lines = [
        "| contender | median s/epoch | best s/epoch | GFLOP/s (median) | share of aejax epoch |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in record["summary"].items():
        lines.append(
            f"| {LABELS[name]} | {row['median_s']:.3f} | {row['min_s']:.3f} | "
            f"{row['gflops_at_median']:.0f} | {100 * row['fraction_of_aejax']:.0f} % |"
        )
    info = record["machine"]
    lines += [
        "",
        f"Machine: {machine.summary_line(info)}. Dense fp32 matmul peak (XLA, 2048²): "
        f"{record['peak_gflops']:.0f} GFLOP/s. One epoch: {record['num_examples']:,} examples, "
        f"batch {record['batch_size']}, {record['epoch_flops'] / 1e9:.1f} GFLOP of matmuls. "
        f"{record['rounds']} rounds.",
        f"Command: `{record['command']}`",
    ]
    return "\n".join(lines) + "\n"


def make_parser() -> argparse.ArgumentParser:
    parser = results.parser(__doc__, "epoch_floor")
    parser.add_argument("--train-limit", type=int, default=None, help="first N training examples")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    return parser


def benchmark(args) -> str:
    """Time every contender, write the results files; the Markdown table."""
    import aejax
    from aejax.engine.train import batch_plan

    if args.rounds < 1 or args.batch_size < 1:
        raise aejax.UserError("rounds and batch size must be at least 1", settings=("rounds",))
    aejax_run, num_examples, input_dim = aejax_epoch(
        args.dataset, args.data_dir, args.train_limit, args.batch_size
    )
    layers = machine.dense_layers(input_dim)
    steps, _, _ = batch_plan(num_examples, args.batch_size)  # padded as aejax pads the last batch
    contenders = {"aejax": aejax_run, "xla_matmuls": xla_matmuls(layers, steps, args.batch_size)}
    torch_run = torch_matmuls(layers, steps, args.batch_size)
    if torch_run is not None:
        contenders["torch_matmuls"] = torch_run
    seconds = measure(contenders, args.rounds)
    epoch_flops = steps * args.batch_size * machine.ae_train_flops_per_example(layers)
    record = {
        "command": args.command,
        "machine": machine.describe(),
        "peak_gflops": machine.matmul_peak_gflops(),
        "num_examples": num_examples,
        "batch_size": args.batch_size,
        "epoch_flops": epoch_flops,
        "rounds": args.rounds,
        "seconds": seconds,
        "summary": summarize(seconds, epoch_flops),
    }
    return results.write(args, record, table(record))


def main(argv=None) -> int:
    return results.run(benchmark, make_parser(), "epoch_floor.py", argv)


if __name__ == "__main__":
    sys.exit(main())
