"""The reference pipeline in PyTorch, in three input styles, for parity tests and benchmarks.

Models, losses and optimiser follow the classic tutorial: an autoencoder (784-128-ReLU-64 /
64-128-ReLU-784-Tanh) pretrained with MSE and Adam 1e-3 on batches of 100 images in [-1, 1], then
``Classifier(encoder + Linear(64, 10))`` fine-tuned with cross-entropy and a fresh Adam 1e-3.

Input styles (``STYLES``):
- ``as_written``: torchvision ``datasets.FashionMNIST``/``MNIST`` + ``ToTensor()`` +
  ``Normalize((0.5,), (0.5,))`` + ``DataLoader(batch_size=100, shuffle=True, num_workers=2)``;
- ``eager``: the whole split normalised once into one tensor, batches taken by index;
- ``compiled``: ``eager`` with the models and the optimiser steps under ``torch.compile``.
"""

from __future__ import annotations

import gzip
import importlib.util
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

STYLES = ("as_written", "eager", "compiled")
TORCHVISION_CLASSES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def shipped_models():
    """`aejax.model.torch_models`, the reference modules aejax ships, loaded from its file on its
    own: it imports only torch, and importing it through the package would bring in JAX, whose
    import would add to the PyTorch processes' memory and start-up."""
    path = Path(__file__).resolve().parents[1] / "aejax" / "model" / "torch_models.py"
    spec = importlib.util.spec_from_file_location("aejax_torch_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_models = shipped_models()
Autoencoder, Classifier = _models.Autoencoder, _models.Classifier


def load_arrays(dataset: str, data_dir, train_limit=None, test_limit=None) -> SimpleNamespace:
    """The four IDX files as uint8 ``(N, 784)`` images and int64 labels, read without JAX.

    The PyTorch processes stay free of JAX (its import would add to their memory and start-up),
    so this is a plain reader of the same files aejax's loader reads.
    """
    arrays = {}
    keys = ("train_images", "train_labels", "test_images", "test_labels")
    for key, name in zip(keys, IDX_FILES, strict=True):
        path = Path(data_dir) / name
        raw = (open if path.is_file() else gzip.open)(
            path if path.is_file() else f"{path}.gz", "rb"
        )
        with raw as f:
            data = f.read()
        ndim = data[3]
        shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)
        limit = train_limit if key.startswith("train") else test_limit
        arrays[key] = array.reshape(len(array), -1)[:limit] if ndim == 3 else array[:limit]
    return SimpleNamespace(name=dataset, **arrays)


def normalize(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 784) -> float32 in [-1, 1]: ``ToTensor()`` then ``Normalize((0.5,), (0.5,))``."""
    return torch.from_numpy(np.array(images)).float().div(255.0).sub(0.5).div(0.5)


def preloaded_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, generator):
    """One shuffled epoch of ``(x, y)`` batches from whole-split tensors (last batch smaller)."""
    order = torch.randperm(len(labels), generator=generator)
    for start in range(0, len(labels), batch_size):
        index = order[start : start + batch_size]
        yield images[index], labels[index]


def train_epoch(model, optimizer, loss_fn, batches: Iterable, target: str, step=None) -> float:
    """One epoch of Adam steps over `batches`; `target` is "input" (autoencoder) or "label"."""
    model.train()
    total, count = 0.0, 0
    for x, y in batches:
        x = x.view(len(x), -1)
        optimizer.zero_grad()
        loss = loss_fn(model(x), x if target == "input" else y)
        loss.backward()
        (step or optimizer.step)()
        total += loss.item() * len(x)
        count += len(x)
    return total / count


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, target: str) -> dict[str, float]:
    """Mean test loss (MSE or cross-entropy) and, for the classifier, accuracy; batches of 1000."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(labels), 1000):
        x, y = images[start : start + 1000], labels[start : start + 1000]
        out = model(x)
        if target == "input":
            loss_sum += nn.functional.mse_loss(out, x, reduction="sum").item() / x.shape[1]
        else:
            loss_sum += nn.functional.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(dim=1) == y).sum().item()
    metrics = {"loss": loss_sum / len(labels)}
    if target == "label":
        metrics["accuracy"] = correct / len(labels)
    return metrics


def torchvision_root(dataset: str, data_dir: str | Path, cache: str | Path) -> Path:
    """A torchvision ``root`` for `dataset`: `data_dir` if laid out so, else a decompressed copy."""
    raw = TORCHVISION_CLASSES[dataset] + "/raw"
    data_dir, cache = Path(data_dir), Path(cache)
    if all((data_dir / raw / name).is_file() for name in IDX_FILES):
        return data_dir
    target = cache / raw
    target.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        if (target / name).is_file():
            continue
        source = data_dir / name
        opener = gzip.open if not source.is_file() else open
        source = source if source.is_file() else data_dir / f"{name}.gz"
        with opener(source, "rb") as src, open(target / f"{name}.tmp", "wb") as dst:
            shutil.copyfileobj(src, dst)
        (target / f"{name}.tmp").rename(target / name)
    return cache


def as_written_loaders(dataset, root, batch_size, train_limit, generator):
    """The tutorial's input pipeline: torchvision dataset + transforms + a 2-worker DataLoader."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    make = getattr(datasets, TORCHVISION_CLASSES[dataset])
    train = make(root=str(root), train=True, download=False, transform=transform)
    if train_limit is not None and train_limit < len(train):
        train = Subset(train, range(min(train_limit, len(train))))
    loader = DataLoader(
        train, batch_size=batch_size, shuffle=True, num_workers=2, generator=generator
    )
    return loader


def run_pipeline(
    style: str,
    data,
    epochs: int,
    seed: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    torchvision_dir: Path | None = None,
) -> dict:
    """Pretrain, transplant, fine-tune in `style`; per-epoch seconds and final test metrics."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    test_x, test_y = normalize(data.test_images), torch.tensor(data.test_labels).long()
    if style == "as_written":  # torchvision reads and transforms the training images itself
        count = len(data.train_labels)
        loader = as_written_loaders(data.name, torchvision_dir, batch_size, count, generator)

        def batches():
            return loader
    else:
        train_x, train_y = normalize(data.train_images), torch.tensor(data.train_labels).long()

        def batches():
            return preloaded_batches(train_x, train_y, batch_size, generator)

    autoencoder = Autoencoder(test_x.shape[1])
    classifier = Classifier(autoencoder.encoder)  # the transplant: the same encoder module
    stages = [
        ("pretrain", autoencoder, nn.MSELoss(), "input"),
        ("finetune", classifier, nn.CrossEntropyLoss(), "label"),
    ]
    result = {}
    for stage, model, loss_fn, target in stages:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        step, net = optimizer.step, model
        if style == "compiled":
            net, step = torch.compile(model), torch.compile(optimizer.step)
        seconds, losses = [], []
        for _ in range(epochs):
            start = time.perf_counter()
            losses.append(train_epoch(net, optimizer, loss_fn, batches(), target, step))
            seconds.append(time.perf_counter() - start)
        test = evaluate(model, test_x, test_y, target)  # eager: same weights, no recompiles
        result[stage] = {"epoch_seconds": seconds, "train_loss": losses, "test": test}
    return result
