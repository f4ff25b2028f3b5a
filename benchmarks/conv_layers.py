"""Why the conv architecture computes its convolutions as matmuls over windows.

    python benchmarks/conv_layers.py --rounds 5 --name conv_layers

One conv autoencoder training step (batch 100, Adam, MSE; the built-in `--arch conv` model at
its default widths), timed in one compiled ``lax.scan`` of ``--steps`` steps, two ways with the
same parameters: aejax's `StridedConv` layers, and Flax's own ``nn.Conv`` / ``nn.ConvTranspose``.
Rounds alternate, so both see the same machine. Writes ``results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import machine
import results


def flax_conv(features: int, fan_in: int, init: str, dtype, name: str, up: bool = False):
    """`aejax.model.layers.conv` with Flax's convolution layers (the initialiser matters not:
    both contenders run on the same parameters)."""
    import flax.linen as nn

    layer = nn.ConvTranspose if up else nn.Conv
    return layer(features, (3, 3), strides=(2, 2), padding="SAME", dtype=dtype, name=name)


def training_steps(steps: int, flax_layers: bool):
    """A zero-argument callable: `steps` compiled autoencoder steps on random images."""
    import jax
    import jax.numpy as jnp
    import optax

    import aejax
    from aejax.model import models

    model = aejax.make_autoencoder(aejax.ModelConfig(arch="conv"), 784)
    images = jax.random.uniform(jax.random.key(0), (steps, 100, 784), minval=-1, maxval=1)
    params = model.init(jax.random.key(1), images[0])
    optimizer = optax.adam(1e-3)

    def step(carry, batch):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((model.apply(p, batch) - batch) ** 2))(
            params
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    # The same model definition; with `flax_layers` each conv is built by Flax's layer instead
    # while the program is traced (the parameters are the same either way).
    built_in = models.conv
    models.conv = flax_conv if flax_layers else built_in
    try:
        compiled = (
            jax.jit(lambda p, s, x: jax.lax.scan(step, (p, s), x))
            .lower(params, optimizer.init(params), images)
            .compile()
        )
    finally:
        models.conv = built_in
    return lambda: jax.block_until_ready(compiled(params, optimizer.init(params), images))


def benchmark(args: argparse.Namespace) -> int:
    contenders = {
        "strided_conv": training_steps(args.steps, flax_layers=False),
        "flax_conv": training_steps(args.steps, flax_layers=True),
    }
    seconds = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    step_ms = {name: 1e3 * statistics.median(s) / args.steps for name, s in seconds.items()}
    record = {
        "command": args.command,
        "steps": args.steps,
        "rounds": args.rounds,
        "machine": machine.describe(),
        "seconds": seconds,
        "step_ms": step_ms,
    }
    table = "\n".join(
        [
            "| layers | conv autoencoder training step |",
            "|---|---|",
            f"| aejax `StridedConv` (matmuls over windows) | {step_ms['strided_conv']:.1f} ms |",
            f"| Flax `nn.Conv` / `nn.ConvTranspose` | {step_ms['flax_conv']:.1f} ms |",
            "",
            f"Median of {args.rounds} rounds of {args.steps} steps (batch 100). "
            f"Flax's layers take {step_ms['flax_conv'] / step_ms['strided_conv']:.1f}x as long. "
            f"Machine: {machine.summary_line(record['machine'])}.",
            "",
        ]
    )
    print(results.write(args, record, table))
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = results.parser(__doc__, "conv_layers")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each contender")
    parser.add_argument("--steps", type=int, default=100, help="training steps per run")
    return parser


if __name__ == "__main__":
    sys.exit(results.run(benchmark, make_parser(), "conv_layers.py"))
