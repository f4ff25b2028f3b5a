"""IDX files, the MNIST layout: reading one, and finding and reading the four of a dataset.

IDX format: a big-endian header (magic 0x00000803 for images, 0x00000801 for labels, then one
uint32 per dimension), then the raw uint8 data. torchvision keeps the same files under
``ROOT/MNIST/raw/``; Debian's dataset-fashion-mnist under /usr/share/datasets/fashion-mnist.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from aejax.data import idx_cache
from aejax.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
# The most an IDX file may declare: far above any image dataset in this format (MNIST's training
# images are 47 MB), far below what would exhaust a machine's memory.
MAX_IDX_BYTES = 4 * 2**30
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


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a uint8 array shaped by its header.

    Reads no more than the header declares (and refuses a declaration over `max_idx_bytes`), so a
    small archive that inflates without end is refused, not decompressed into memory."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            shape = _idx_shape(path, f)
            size = math.prod(shape)
            raw = f.read(size + 1)  # one byte more than declared shows a file too long
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read IDX file {path}: {err}") from err
    if len(raw) != size:
        header = 4 + 4 * len(shape)
        raise DataError(
            f"{path} holds {'more than ' if len(raw) > size else ''}{header + len(raw)} bytes but "
            f"its header {shape} needs {header + size}; the file is truncated or corrupt, "
            "download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def _idx_shape(path: Path, f) -> tuple[int, ...]:
    """The array shape an open IDX file's header declares, checked."""
    head = f.read(4)
    if len(head) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({len(head)} bytes)")
    magic = int.from_bytes(head, "big")
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise DataError(
            f"{path} has magic number 0x{magic:08x}, expected 0x{IMAGES_MAGIC:08x} (images) "
            f"or 0x{LABELS_MAGIC:08x} (labels); is it an IDX file?"
        )
    ndim = magic & 0xFF
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(
            f"{path} ends inside its header; the file is truncated or corrupt, download it again"
        )
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    if 0 in shape:
        raise DataError(f"{path} declares an empty array {shape}; it holds no examples")
    if math.prod(shape) > (cap := max_idx_bytes()):
        raise DataError(
            f"{path} declares {shape}, {math.prod(shape) / 2**30:.1f} GiB, more than the "
            f"{cap / 2**30:.3g} GiB an IDX file may hold here"
        )
    return shape


def max_idx_bytes() -> int:
    """The most an IDX file may declare on this machine: `MAX_IDX_BYTES`, or half its memory."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: the fixed cap alone
        return MAX_IDX_BYTES
    return min(MAX_IDX_BYTES, memory // 2)


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


def read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    """The four IDX arrays of one folder (by `IDX_STEMS` key), checked to agree with each other."""
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
    return arrays


def find_idx_folder(dataset: str, data_dir: str | None) -> Path:
    """The first candidate folder that holds `dataset`'s IDX files, or a DataError naming them."""
    folders = idx_folders(dataset, data_dir)
    for folder in folders:
        if find_idx_file(folder, IDX_STEMS["train_images"]):
            return folder
    if data_dir and not Path(data_dir).expanduser().exists():
        raise DataError(f"data folder {data_dir} does not exist", settings=("data_dir",))
    searched = ", ".join(str(f) for f in folders) or "(no folder given)"
    raise DataError(
        f"no IDX files for {dataset} in {searched}; point data_dir at a folder holding them",
        settings=("data_dir",),
    )
