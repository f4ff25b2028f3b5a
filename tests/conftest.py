"""Shared fixtures: real Fashion-MNIST, the committed subset or (where installed) the full set."""

import os

import pytest

from aejax.config import DataConfig
from aejax.data.datasets import Dataset, load_dataset
from support import FASHION_DIR, subset_data_config


@pytest.fixture(scope="session")
def fashion() -> Dataset:
    """All of Fashion-MNIST (60 000 / 10 000), for the few tests that need the full set."""
    if not FASHION_DIR.is_dir():
        pytest.skip(
            f"needs the full Fashion-MNIST in {FASHION_DIR} (Debian's dataset-fashion-mnist, "
            "installed by scripts/setup.sh)"
        )
    return load_dataset(
        DataConfig(dataset="fashion_mnist", source="idx", data_dir=str(FASHION_DIR))
    )


@pytest.fixture(scope="session")
def small_fashion() -> Dataset:
    """2000 train / 500 test real examples (tests/data): enough to learn, fast to train."""
    return load_dataset(subset_data_config())


@pytest.fixture(scope="session", autouse=True)
def private_compile_cache(tmp_path_factory):
    """Scripts cache compiled programs per user (XDG cache dir): the suite keeps its own."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME")
    else:
        os.environ["XDG_CACHE_HOME"] = saved
