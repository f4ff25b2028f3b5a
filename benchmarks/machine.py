"""What the benchmark ran on, what the model costs in FLOPs, and what the CPU can do at best."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time

PACKAGES = ("jax", "jaxlib", "flax", "optax", "torch", "torchvision", "numpy")


def dense_layers(input_dim: int = 784, hidden: int = 128, latent: int = 64) -> list[tuple]:
    """The autoencoder's dense layers as ``(fan_in, fan_out)``, input side first."""
    return [(input_dim, hidden), (hidden, latent), (latent, hidden), (hidden, input_dim)]


def ae_train_flops_per_example(layers: list[tuple]) -> int:
    """Matmul FLOPs of one training example: forward, weight gradients, input gradients.

    Each layer costs ``2 * fan_in * fan_out`` forward and the same again for its weight gradient;
    its input gradient costs that once more, except for the first layer, whose input (the image)
    needs no gradient. Elementwise work (bias, ReLU, tanh, loss, Adam) is not counted.
    """
    matmul = [2 * fan_in * fan_out for fan_in, fan_out in layers]
    return sum(matmul) * 2 + sum(matmul[1:])


def ae_epoch_flops(num_examples: int, layers: list[tuple] | None = None) -> int:
    """Matmul FLOPs of one autoencoder training epoch over `num_examples` examples."""
    return num_examples * ae_train_flops_per_example(layers or dense_layers())


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Best achieved GFLOP/s of a jitted ``size x size`` float32 matmul (XLA on this CPU)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def describe() -> dict:
    """CPU model, core counts, memory, OS and package versions."""
    flags = _cpu_flags()
    info = {
        "cpu_model": _cpuinfo_field("model name") or platform.processor() or "unknown",
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "avx512": "avx512f" in flags,
        "avx2": "avx2" in flags,
        "memory_gib": _meminfo_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {},
    }
    for name in PACKAGES:
        try:
            info["packages"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info["packages"][name] = None
    return info


def summary_line(info: dict) -> str:
    """One line for the report: ``2 cores of AMD EPYC (AVX-512), 23.4 GiB, Python 3.11``."""
    cores = info["usable_cpus"] or info["logical_cpus"]
    # The widest vector unit sets the matmul peak: AVX-512 doubles AVX2's FLOPs per cycle.
    simd = " (AVX-512)" if info["avx512"] else " (AVX2, no AVX-512)" if info.get("avx2") else ""
    return (
        f"{cores} cores of {info['cpu_model']}{simd}, {info['memory_gib']} GiB RAM, "
        f"Python {info['python']}"
    )


def _cpu_flags() -> list[str]:
    return (_cpuinfo_field("flags") or "").split()


def _cpuinfo_field(field: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _meminfo_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        return None
    return None
