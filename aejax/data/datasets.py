"""Datasets as in-memory uint8 arrays: IDX files (MNIST layout), tfds, a verified download of the
IDX archives (`aejax.data.download`), and `auto`, which tries them in that order and is
offline-safe.

Images are kept as uint8 ``(N, H*W)``; `normalize` maps them to [-1, 1] on the device, exactly as
``transforms.Normalize((0.5,), (0.5,))`` after ``ToTensor()`` does in the reference pipeline.
A run puts its splits on the device once (`to_device`) and every epoch gathers batches there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from aejax.config import DataConfig
from aejax.data import download, idx_cache
from aejax.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Folder names under which PyTorch/torchvision users already keep these files.
TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
SYSTEM_FOLDERS = {"fashion_mnist": ["/usr/share/datasets/fashion-mnist"]}
DEFAULT_ROOT = Path("data")  # torchvision's tutorial root: downloads land in DEFAULT_ROOT/MNIST/raw


class Split(NamedTuple):
    """One split: uint8 images ``(N, features)`` and int32 labels ``(N,)``; a PyTree."""

    images: Any
    labels: Any


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train and test splits as uint8 images ``(N, features)`` and int32 labels ``(N,)``."""

    name: str
    source: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    @property
    def train(self) -> Split:
        return Split(self.train_images, self.train_labels)

    @property
    def test(self) -> Split:
        return Split(self.test_images, self.test_labels)

    @property
    def input_dim(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def num_classes(self) -> int:
        return int(max(self.train_labels.max(), self.test_labels.max())) + 1

    def describe(self) -> str:
        return (
            f"{self.name} from {self.source}: {len(self.train_labels)} train / "
            f"{len(self.test_labels)} test examples, {self.input_dim} features"
        )


@dataclasses.dataclass(frozen=True)
class DeviceData:
    """The splits one run trains, tests and (optionally) validates on, on the device."""

    train: Split
    test: Split
    val: Split | None = None


def to_device(data: Dataset, val: Split | None = None, sharding=None) -> DeviceData:
    """Put `data`'s splits (and a validation split) on the device, once per run.

    `sharding` places them elsewhere, e.g. replicated over a device mesh (`aejax.engine.parallel`).
    """
    splits = (data.train, data.test, val)
    return DeviceData(*(None if s is None else jax.device_put(s, sharding) for s in splits))


def normalize(images):
    """uint8 [0, 255] -> float32 [-1, 1], i.e. ``(x / 255 - 0.5) / 0.5``."""
    return images.astype(jnp.float32) / 127.5 - 1.0


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a uint8 array shaped by its header."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read IDX file {path}: {err}") from err
    if len(raw) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise DataError(
            f"{path} has magic number 0x{magic:08x}, expected 0x{IMAGES_MAGIC:08x} (images) "
            f"or 0x{LABELS_MAGIC:08x} (labels); is it an IDX file?"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{path} holds {len(raw)} bytes but its header {shape} needs {expected}; "
            "the file is truncated or corrupt, download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """The IDX file `stem` in `folder`, raw or gzipped, or None."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def idx_folders(dataset: str, data_dir: str | None) -> list[Path]:
    """Candidate folders for `dataset`'s IDX files, most specific first."""
    folders: list[Path] = []
    if data_dir:
        root = Path(data_dir).expanduser()
        sub = TORCHVISION_FOLDERS[dataset]
        folders += [root, root / sub / "raw", root / sub, root / dataset, root / dataset / "raw"]
    else:
        # torchvision's tutorial default root is ./data; Debian ships Fashion-MNIST system-wide.
        sub = TORCHVISION_FOLDERS[dataset]
        folders += [DEFAULT_ROOT / sub / "raw", *map(Path, SYSTEM_FOLDERS.get(dataset, []))]
    return folders


def load_idx_folder(folder: Path, dataset: str) -> Dataset:
    """Read the four IDX files of one folder and check that they agree with each other."""
    arrays = {}
    for key, stem in IDX_STEMS.items():
        path = find_idx_file(folder, stem)
        if path is None:
            raise DataError(f"{folder} has no {stem}[.gz]; expected the four MNIST-style IDX files")
        arrays[key] = idx_cache.cached(path, read_idx)  # gzipped ones kept decompressed
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(f"{folder}: {split} images must be 3-D and labels 1-D IDX arrays")
        if len(images) != len(labels):
            raise DataError(
                f"{folder}: {split} split has {len(images)} images but {len(labels)} labels"
            )
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(f"{folder}: train and test images differ in size")
    return Dataset(
        name=dataset,
        source=f"idx:{folder}",
        train_images=arrays["train_images"].reshape(len(arrays["train_images"]), -1),
        train_labels=arrays["train_labels"].astype(np.int32),
        test_images=arrays["test_images"].reshape(len(arrays["test_images"]), -1),
        test_labels=arrays["test_labels"].astype(np.int32),
    )


def load_idx(dataset: str, data_dir: str | None) -> Dataset:
    """Load `dataset` from the first candidate folder that holds its IDX files."""
    folders = idx_folders(dataset, data_dir)
    for folder in folders:
        if find_idx_file(folder, IDX_STEMS["train_images"]):
            return load_idx_folder(folder, dataset)
    if data_dir and not Path(data_dir).expanduser().exists():
        raise DataError(f"data folder {data_dir} does not exist", settings=("data_dir",))
    searched = ", ".join(str(f) for f in folders) or "(no folder given)"
    raise DataError(
        f"no IDX files for {dataset} in {searched}; point data_dir at a folder holding them",
        settings=("data_dir",),
    )


def load_download(config: DataConfig, checksums: Mapping[str, str] | None = None) -> Dataset:
    """Download the dataset's IDX archives into torchvision's layout under `data_dir` (default
    ./data), each checked against `checksums` (default: those tfds registers), and load them."""
    root = Path(config.data_dir).expanduser() if config.data_dir else DEFAULT_ROOT
    folder = root / TORCHVISION_FOLDERS[config.dataset] / "raw"
    urls = download.mirror_urls(config.dataset, config.mirror)
    expected = checksums or download.registered_checksums(config.dataset)
    return load_idx_folder(download.fetch_archives(folder, urls, expected), config.dataset)


def load_tfds(dataset: str, data_dir: str | None, allow_download: bool = True) -> Dataset:
    """Load `dataset` through `tfds.data_source`; has tfds download it (which needs TensorFlow)
    only when `allow_download` and tfds's download host answers."""
    import tensorflow_datasets as tfds

    _hide_gpus_from_tensorflow()
    splits = {}
    for split in ("train", "test"):
        try:
            source = tfds.data_source(dataset, split=split, data_dir=data_dir, download=False)
        except Exception:  # noqa: BLE001 - tfds raises many types for "not prepared here"
            tfds_host = download.MIRRORS[dataset][:1]
            if not allow_download or not download.answering(tfds_host):
                why = "downloads are off" if not allow_download else "there is no network"
                raise DataError(
                    f"{dataset} is not prepared in the tfds data dir and {why} to download it; "
                    "point data_dir at a folder with its IDX files",
                    settings=("data_dir",),
                ) from None
            try:
                source = tfds.data_source(dataset, split=split, data_dir=data_dir, download=True)
            except ImportError as err:
                raise DataError(
                    f"building {dataset} with tfds needs TensorFlow: "
                    f"pip install 'aejax[tfds]' ({err})"
                ) from err
        records = [source[i] for i in range(len(source))]
        images = np.stack([np.asarray(r["image"], np.uint8).reshape(-1) for r in records])
        labels = np.asarray([r["label"] for r in records], np.int32)
        splits[split] = (images, labels)
    return Dataset(dataset, "tfds", *splits["train"], *splits["test"])


def _hide_gpus_from_tensorflow() -> None:
    """If TensorFlow is present, keep it off GPUs so it never takes JAX's accelerator memory."""
    try:
        import tensorflow as tf
    except ImportError:
        return
    tf.config.set_visible_devices([], "GPU")


def load_auto(config: DataConfig, checksums: Mapping[str, str] | None = None) -> Dataset:
    """Local IDX files, then a prepared tfds dataset, then a download if its host answers."""
    dataset, data_dir = config.dataset, config.data_dir
    try:
        return load_idx(dataset, data_dir)
    except DataError as idx_error:
        if any(find_idx_file(f, IDX_STEMS["train_images"]) for f in idx_folders(dataset, data_dir)):
            raise  # the files are there but broken: say so rather than hide it behind tfds
        not_found = f"{dataset} not found locally ({idx_error}), not prepared for tfds, and"
    with contextlib.suppress(DataError):
        return load_tfds(dataset, data_dir, allow_download=False)
    if config.no_download:
        raise DataError(f"{not_found} downloads are off", settings=("data_dir", "no_download"))
    urls = download.mirror_urls(dataset, config.mirror)
    if not download.answering(urls):
        silent = f"no answer from {download.hosts(urls)} within {download.PROBE_TIMEOUT_S:g} s"
        message = f"{not_found} there is no network to download it ({silent})"
        raise DataError(message, settings=("data_dir",))
    return load_download(config, checksums)


def subset(data: Dataset, train_limit: int | None, test_limit: int | None) -> Dataset:
    """The first `train_limit`/`test_limit` examples of each split (None keeps all)."""
    return dataclasses.replace(
        data,
        train_images=data.train_images[:train_limit],
        train_labels=data.train_labels[:train_limit],
        test_images=data.test_images[:test_limit],
        test_labels=data.test_labels[:test_limit],
    )


def load_dataset(config: DataConfig, checksums: Mapping[str, str] | None = None) -> Dataset:
    """Load the dataset that `config` names from its source, cut to its limits.

    `checksums` (archive name -> sha256) replaces the registered ones a download is checked
    against: for a mirror of other, e.g. hand-made, archives.
    """
    if config.source == "idx":
        data = load_idx(config.dataset, config.data_dir)
    elif config.source == "tfds":
        data = load_tfds(config.dataset, config.data_dir, allow_download=not config.no_download)
    else:
        data = {"download": load_download, "auto": load_auto}[config.source](config, checksums)
    if len(data.train_labels) == 0 or len(data.test_labels) == 0:
        raise DataError(f"{data.describe()}: a split is empty")
    return subset(data, config.train_limit, config.test_limit)
