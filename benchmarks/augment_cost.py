"""What an augmented fine-tuning epoch costs against a plain one.

    python benchmarks/augment_cost.py --dataset fashion_mnist \\
        --data-dir /usr/share/datasets/fashion-mnist --rounds 5 --name augment_cost

In one process, one epoch of each per round, alternating (this machine's speed drifts, so only
figures taken side by side compare), each the compiled epoch program `aejax.finetune` runs:

- ``plain``: the classifier epoch (batch 100, Adam), no augmentation;
- ``latent-mix:R``, ``latent-noise:R``: every step also decodes R generated examples per real one
  with the frozen autoencoder (encoding the batch, mixing or perturbing codes, decoding), then
  trains on the batch of ``(1 + R) x 100``;
- ``shift:P``: every step adds one copy of each example shifted by up to P pixels.

The autoencoder is freshly initialised: generation costs the same whatever its weights. Writes
``results/<name>.json`` and ``results/<name>.md``.
"""

from __future__ import annotations

import statistics
import sys

import machine
import results
from epoch_floor import epoch_runner, measure

VARIANTS = ("none", "latent-mix:1", "latent-noise:1", "shift:2")


def variant_runner(data, device_data, spec: str, batch_size: int):
    """A zero-argument callable that runs one epoch of the `spec` fine-tuning program."""
    import jax
    import optax

    import aejax
    from aejax.config import AugmentConfig
    from aejax.engine.epochs import compile_stage
    from aejax.engine.train import create_state
    from aejax.model import generation, objectives

    config = aejax.ModelConfig()
    classifier = aejax.make_classifier(config)
    state = create_state(classifier, data.input_dim, optax.adam(1e-3), jax.random.key(0))
    augment_config = AugmentConfig(spec)
    augmentation = None
    if augment_config.kind != "none":
        autoencoder = aejax.make_autoencoder(config, data.input_dim)
        params = jax.jit(autoencoder.init)(jax.random.key(2), device_data.train.images[:1] * 0.0)
        fit = jax.jit(generation.fit_generator, static_argnums=(0, 4))
        generator = fit(autoencoder, params["params"], *device_data.train, config.num_classes)
        augmentation = (generation.make_augment(augment_config, autoencoder), generator)
    metrics_fn = objectives.classification_metrics(classifier.apply)
    key = jax.random.key(1)
    compiled = compile_stage(
        metrics_fn, state, device_data, batch_size, key, augmentation=augmentation
    ).epoch
    return epoch_runner(compiled, state, device_data.train, key)


def table(record: dict) -> str:
    """The Markdown table of one run."""
    lines = [
        "| fine-tuning epoch | median s/epoch | best s/epoch | cost vs plain (median) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in record["summary"].items():
        label = "plain" if name == "none" else f"`--augment {name}`"
        lines.append(
            f"| {label} | {row['median_s']:.3f} | {row['min_s']:.3f} | "
            f"{row['ratio_to_plain']:.2f}× |"
        )
    lines += [
        "",
        f"Machine: {machine.summary_line(record['machine'])}. {record['num_examples']:,} "
        f"real examples per epoch, batch {record['batch_size']}; {record['rounds']} rounds.",
        f"Command: `{record['command']}`",
    ]
    return "\n".join(lines) + "\n"


def make_parser():
    parser = results.parser(__doc__, "augment_cost")
    parser.add_argument("--train-limit", type=int, default=None, help="first N training examples")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    return parser


def benchmark(args) -> str:
    """Time every variant, write the results files; the Markdown table."""
    import aejax

    if args.rounds < 1 or args.batch_size < 1:
        raise aejax.UserError("rounds and batch size must be at least 1", settings=("rounds",))
    config = aejax.DataConfig(
        dataset=args.dataset, data_dir=args.data_dir, train_limit=args.train_limit
    )
    data = aejax.load_dataset(config)
    device_data = aejax.to_device(data)
    runners = {spec: variant_runner(data, device_data, spec, args.batch_size) for spec in VARIANTS}
    seconds = measure(runners, args.rounds)
    base = statistics.median(seconds["none"])
    summary = {
        name: {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "ratio_to_plain": statistics.median(times) / base,
        }
        for name, times in seconds.items()
    }
    record = {
        "command": args.command,
        "machine": machine.describe(),
        "num_examples": len(data.train_labels),
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "seconds": seconds,
        "summary": summary,
    }
    return results.write(args, record, table(record))


if __name__ == "__main__":
    sys.exit(results.run(benchmark, make_parser(), "augment_cost.py"))
