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
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from aejax.config import DataConfig
from aejax.data import contract, download, idx
from aejax.errors import DataError
from aejax.specs import parse_dataset


class Split(NamedTuple):
    """One split: uint8 images ``(N, features)`` and int32 labels ``(N,)``; a PyTree."""

    images: Any
    labels: Any


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train and test splits as uint8 images ``(N, features)`` and int32 labels ``(N,)``.

    Checked when made (`aejax.data.contract`); `Dataset.from_arrays` makes one from images and
    labels in any of the accepted layouts. `loaded_with` is the `DataConfig` that loads these
    very arrays again (None for arrays passed in from Python).
    """

    name: str
    source: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    loaded_with: DataConfig | None = None

    def __post_init__(self):
        contract.require_stored(*self.train, *self.test)

    @classmethod
    def from_arrays(
        cls,
        train_images,
        train_labels,
        test_images,
        test_labels,
        name: str = "arrays",
        num_classes: int | None = None,
    ) -> Dataset:
        """A dataset of your own arrays: images uint8 in [0, 255] or float in [0, 1], shaped
        (N, H, W), (N, H, W, C) or (N, features); labels integers in [0, num_classes)."""
        splits = []
        for split, images, labels in (
            ("train", train_images, train_labels),
            ("test", test_images, test_labels),
        ):
            images = contract.as_images(images, f"{split} images")
            splits += [
                images,
                contract.as_labels(labels, f"{split} labels", len(images), num_classes),
            ]
        return cls(name, "arrays", *splits)

    def fingerprint(self) -> dict:
        """Name, source, and each split's shapes and SHA-256: what tells this data apart."""
        return {
            split: contract.split_fingerprint(*getattr(self, split)) for split in ("train", "test")
        } | {"name": self.name, "source": self.source}

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


def to_device(
    data: Dataset, val: Split | None = None, sharding: jax.sharding.Sharding | None = None
) -> DeviceData:
    """Put `data`'s splits (and a validation split) on the device, once per run.

    `sharding` places them elsewhere, e.g. replicated over a device mesh (`aejax.engine.parallel`).
    """
    splits = (data.train, data.test, val)
    return DeviceData(*(None if s is None else jax.device_put(s, sharding) for s in splits))


def normalize(images: jax.Array | np.ndarray) -> jax.Array:
    """uint8 [0, 255] -> float32 [-1, 1], i.e. ``(x / 255 - 0.5) / 0.5``."""
    return images.astype(jnp.float32) / 127.5 - 1.0


def load_idx_folder(folder: Path, dataset: str) -> Dataset:
    """The dataset whose four IDX files one folder holds."""
    arrays = idx.read_idx_folder(folder)
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
    return load_idx_folder(idx.find_idx_folder(dataset, data_dir), dataset)


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")  # Keras' mnist.npz layout


def load_npz(path: Path) -> Dataset:
    """The four arrays of an ``.npz`` file (`NPZ_KEYS`), through the data contract's checks."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            arrays = [] if missing else [npz[k] for k in NPZ_KEYS]
    except (OSError, ValueError) as err:
        raise DataError(
            f"cannot read {path} as an .npz file ({err})", settings=("dataset",)
        ) from err
    if missing:
        raise DataError(
            f"{path} has no {', '.join(missing)}; an npz dataset holds {', '.join(NPZ_KEYS)}",
            settings=("dataset",),
        )
    data = Dataset.from_arrays(*arrays, name=path.stem)
    return dataclasses.replace(data, source=f"npz:{path}")


def load_download(config: DataConfig, checksums: Mapping[str, str] | None = None) -> Dataset:
    """Download the dataset's IDX archives into torchvision's layout under `data_dir` (default
    ./data), each checked against `checksums` (default: those tfds registers), and load them."""
    root = Path(config.data_dir).expanduser() if config.data_dir else idx.DEFAULT_ROOT
    folder = root / idx.TORCHVISION_FOLDERS[config.dataset] / "raw"
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
        folders = idx.idx_folders(dataset, data_dir)
        if any(idx.find_idx_file(f, idx.IDX_STEMS["train_images"]) for f in folders):
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
    kind, where = parse_dataset(config.dataset)
    if kind == "npz":
        data = load_npz(Path(where).expanduser())
    elif kind == "idx":
        data = load_idx_folder(Path(where).expanduser(), config.name)
    elif config.source == "idx":
        data = load_idx(config.dataset, config.data_dir)
    elif config.source == "tfds":
        data = load_tfds(config.dataset, config.data_dir, allow_download=not config.no_download)
    else:
        data = {"download": load_download, "auto": load_auto}[config.source](config, checksums)
    if len(data.train_labels) == 0 or len(data.test_labels) == 0:
        raise DataError(f"{data.describe()}: a split is empty")
    data = subset(data, config.train_limit, config.test_limit)
    return dataclasses.replace(data, loaded_with=config)
