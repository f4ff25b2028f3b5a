import dataclasses
import gzip

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from aejax.config import DataConfig
from aejax.data import datasets as data_lib
from aejax.data import download
from aejax.data.datasets import DeviceData, Split, load_dataset, normalize, to_device
from aejax.data.idx import read_idx
from aejax.errors import DataError
from support import SUBSET_DIR, SUBSET_SIZES, subset_data_config, write_idx, write_idx_dataset


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_returns_exactly_what_was_written(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x-idx3-ubyte", array, gz=gz)
    np.testing.assert_array_equal(read_idx(path), array)


def test_wrong_magic_is_named(tmp_path):
    path = write_idx(tmp_path / "bad", np.zeros((2, 2, 2)), magic=0x12345678)
    with pytest.raises(DataError, match="magic number 0x12345678"):
        read_idx(path)


def test_an_inflating_archive_is_refused_at_the_size_its_header_declares(tmp_path):
    # 60 MB of zeros behind a header that declares 4 images: 60 KB gzipped, never inflated whole.
    header = (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (4, 28, 28))
    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(header)
        for _ in range(60):
            f.write(bytes(2**20))
    assert path.stat().st_size < 2**20
    with pytest.raises(DataError, match=r"holds more than 3153 bytes but its header \(4, 28, 28\)"):
        read_idx(path)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((3, 28, 0), r"declares an empty array \(3, 28, 0\); it holds no examples"),
        ((2**31, 28, 28), r"declares \(2147483648, 28, 28\), 1568.0 GiB, more than the 4 GiB"),
    ],
)
def test_a_header_declaring_nothing_or_too_much_is_one_line(tmp_path, shape, message):
    header = (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(header + bytes(100))
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_an_idx_file_may_declare_at_most_half_the_machines_memory(tmp_path, monkeypatch):
    from aejax.data import idx

    path = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((4, 28, 28)))
    pages = {"SC_PHYS_PAGES": 1024, "SC_PAGE_SIZE": 4096}  # a machine of 4 MiB
    monkeypatch.setattr(idx.os, "sysconf", pages.__getitem__)
    assert idx.max_idx_bytes() == 2 << 20 and read_idx(path).shape == (4, 28, 28)
    path = write_idx(tmp_path / "y-idx3-ubyte", np.zeros((3000, 28, 28)))  # 2.2 MiB
    with pytest.raises(DataError, match=r"declares \(3000, 28, 28\), .* more than the 0.00195 GiB"):
        read_idx(path)


def test_truncated_file_is_named(tmp_path):
    path = write_idx(tmp_path / "t", np.zeros((4, 28, 28)))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_loads_flattened_uint8_and_int32_labels(tmp_path, gz):
    arrays = write_idx_dataset(tmp_path, gz=gz)
    data = load_dataset(DataConfig(source="idx", data_dir=str(tmp_path)))
    assert data.train_images.shape == (20, 784) and data.train_images.dtype == np.uint8
    assert data.test_labels.dtype == np.int32
    np.testing.assert_array_equal(
        data.train_images, arrays["train-images-idx3-ubyte"].reshape(20, -1)
    )


def test_torchvision_layout_is_found(tmp_path):
    write_idx_dataset(tmp_path / "FashionMNIST" / "raw")
    data = load_dataset(DataConfig(dataset="fashion_mnist", source="idx", data_dir=str(tmp_path)))
    assert "FashionMNIST/raw" in data.source and len(data.train_labels) == 20


def test_count_mismatch_is_refused(tmp_path):
    write_idx_dataset(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(19))
    with pytest.raises(DataError, match="20 images but 19 labels"):
        load_dataset(DataConfig(source="idx", data_dir=str(tmp_path)))


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(source="idx", data_dir=str(tmp_path / "nope")))


def test_real_fashion_mnist_subset(small_fashion):
    assert small_fashion.train_images.shape == (SUBSET_SIZES[0], 784)
    assert small_fashion.test_images.shape == (SUBSET_SIZES[1], 784)
    assert set(np.unique(small_fashion.train_labels)) == set(range(10))
    assert small_fashion.train_labels[:3].tolist() == [9, 0, 0]  # ankle boot, t-shirt, t-shirt


def test_real_fashion_mnist(fashion):
    assert fashion.train_images.shape == (60000, 784)
    assert fashion.test_images.shape == (10000, 784)
    assert set(np.unique(fashion.train_labels)) == set(range(10))
    assert np.bincount(fashion.train_labels).tolist() == [6000] * 10
    assert fashion.train_labels[:3].tolist() == [9, 0, 0]  # ankle boot, t-shirt, t-shirt


def test_normalize_maps_uint8_to_minus_one_one():
    pixels = np.array([0, 255, 51], np.uint8)
    np.testing.assert_allclose(normalize(pixels), (pixels / 255 - 0.5) / 0.5, atol=1e-6)


def test_limits_cut_both_splits():
    data = load_dataset(subset_data_config(train_limit=300, test_limit=7))
    assert (len(data.train_labels), len(data.test_labels)) == (300, 7)


def test_splits_and_device_data(small_fashion):
    train, test = small_fashion.train, small_fashion.test
    assert isinstance(train, Split) and train.images is small_fashion.train_images
    assert test.labels is small_fashion.test_labels
    images, labels = train  # a Split unpacks like a pair
    assert len(images) == len(labels) == SUBSET_SIZES[0]
    val = Split(small_fashion.train_images[:5], small_fashion.train_labels[:5])
    on_device = to_device(small_fashion, val)
    assert isinstance(on_device, DeviceData) and isinstance(on_device.test, Split)
    assert isinstance(on_device.train.images, jax.Array)
    np.testing.assert_array_equal(on_device.test.labels, small_fashion.test_labels)
    np.testing.assert_array_equal(on_device.val.images, val.images)
    assert to_device(small_fashion).val is None


def test_tfds_source_under_mock_data():
    with tfds.testing.mock_data(num_examples=12):
        data = load_dataset(DataConfig(dataset="mnist", source="tfds"))
    assert data.source == "tfds"
    assert data.train_images.shape == (12, 784) and data.train_images.dtype == np.uint8
    assert data.train_labels.shape == (12,) and data.train_labels.max() < 10


def test_auto_offline_without_local_files_fails_with_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "answering", lambda *a, **k: [])
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(dataset="mnist", source="auto", data_dir=str(tmp_path)))
    message = str(info.value)
    assert "no network" in message and "data_dir" in message and "\n" not in message
    assert info.value.settings == ("data_dir",)


def test_auto_reports_broken_local_files_instead_of_trying_tfds(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01")
    monkeypatch.setattr(data_lib, "load_tfds", lambda *a: pytest.fail("tfds must not be tried"))
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_dataset(DataConfig(source="auto", data_dir=str(tmp_path)))


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _keras_arrays(n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": np.arange(n_train) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": np.arange(n_test) % 10,
    }


def test_an_npz_in_keras_layout_loads_its_four_arrays(tmp_path):
    arrays = _keras_arrays()
    data = load_dataset(DataConfig(dataset=f"npz:{_npz(tmp_path / 'mine.npz', **arrays)}"))
    np.testing.assert_array_equal(data.train_images, arrays["x_train"].reshape(6, 784))
    np.testing.assert_array_equal(data.test_labels, arrays["y_test"])
    assert data.name == "mine" and data.source.startswith("npz:") and data.num_classes == 6


def test_an_npz_that_is_missing_arrays_or_unreadable_is_one_error(tmp_path):
    partial = {k: v for k, v in _keras_arrays().items() if k != "y_test"}
    with pytest.raises(DataError, match="has no y_test; an npz dataset holds"):
        data_lib.load_npz(_npz(tmp_path / "partial.npz", **partial))
    with pytest.raises(DataError, match="cannot read .* as an .npz file"):
        data_lib.load_npz(tmp_path / "absent.npz")
    pickled = {**_keras_arrays(), "x_train": np.array([object()] * 6)}  # code, not data
    with pytest.raises(DataError, match="cannot read .* as an .npz file"):
        data_lib.load_npz(_npz(tmp_path / "pickled.npz", **pickled))


def test_the_number_of_classes_is_one_past_the_largest_label(small_fashion):
    assert small_fashion.num_classes == 10


def test_a_dataset_cannot_be_changed_once_checked_nor_its_device_copy(small_fashion):
    with pytest.raises(dataclasses.FrozenInstanceError):
        small_fashion.train_labels = small_fashion.train_labels[:1]
    on_device = to_device(data_lib.subset(small_fashion, 10, 10))
    with pytest.raises(dataclasses.FrozenInstanceError):
        on_device.train = on_device.test


def _one_example_each(small_fashion, n_train=1, n_test=1):
    return data_lib.Dataset(
        "fashion_mnist", "idx", small_fashion.train_images[:n_train],
        small_fashion.train_labels[:n_train], small_fashion.test_images[:n_test],
        small_fashion.test_labels[:n_test],
    )  # fmt: skip


def test_an_empty_split_is_refused_and_one_example_each_is_taken(small_fashion, monkeypatch):
    def loading(n_train, n_test):
        monkeypatch.setattr(
            data_lib, "load_idx", lambda *a: _one_example_each(small_fashion, n_train, n_test)
        )
        return load_dataset(DataConfig(dataset="fashion_mnist", source="idx"))

    for n_train, n_test in [(0, 1), (1, 0)]:
        with pytest.raises(DataError, match="a split is empty"):
            loading(n_train, n_test)
    data = loading(1, 1)
    assert (len(data.train_labels), len(data.test_labels)) == (1, 1)


def test_a_download_lands_under_the_data_dir_checked_against_the_checksums_given(
    small_fashion, tmp_path, monkeypatch
):
    fetched = []

    def fetch(folder, urls, expected):
        fetched.append((folder, expected))
        return SUBSET_DIR

    monkeypatch.setattr(download, "fetch_archives", fetch)
    config = DataConfig(dataset="fashion_mnist", source="download", data_dir=str(tmp_path))
    mine = {"train-images-idx3-ubyte.gz": "0" * 64}
    data_lib.load_download(config, checksums=mine)
    data_lib.load_download(config)
    assert fetched[0] == (tmp_path / "FashionMNIST" / "raw", mine)
    assert fetched[1][1] == download.registered_checksums("fashion_mnist")


class _TfdsNotPrepared:
    """`tfds.data_source` for a dataset not prepared here, which a download would prepare:
    records how it was asked."""

    def __init__(self):
        self.downloads = []

    def __call__(self, dataset, split, data_dir, download):
        self.downloads.append(download)
        if not download:
            raise FileNotFoundError(f"{dataset} is not prepared")
        return [{"image": np.full((28, 28, 1), 7, np.uint8), "label": 3}] * 2


@pytest.mark.parametrize("allow, answering, why", [
    (False, True, "downloads are off"), (True, False, "there is no network"),
])  # fmt: skip
def test_tfds_only_reads_what_is_prepared_unless_it_may_download(
    monkeypatch, allow, answering, why
):
    source, probed = _TfdsNotPrepared(), []
    monkeypatch.setattr(tfds, "data_source", source)
    monkeypatch.setattr(download, "answering", lambda urls: probed.append(urls) or answering)
    with pytest.raises(DataError, match=f"not prepared in the tfds data dir and {why}"):
        data_lib.load_tfds("mnist", None, allow_download=allow)
    assert source.downloads == [False]
    assert probed == ([download.MIRRORS["mnist"][:1]] if allow else [])  # tfds's own host


def test_tfds_downloads_what_is_not_prepared_when_it_may_and_its_host_answers(monkeypatch):
    source = _TfdsNotPrepared()
    monkeypatch.setattr(tfds, "data_source", source)
    monkeypatch.setattr(download, "answering", lambda urls: urls)
    data = data_lib.load_tfds("mnist", None)  # downloads are allowed unless refused
    assert source.downloads == [False, True, False, True]  # each split: read, then download
    assert data.train_images.shape == (2, 784) and data.test_labels.tolist() == [3, 3]


def test_no_download_reaches_the_tfds_source(monkeypatch):
    asked = []
    monkeypatch.setattr(
        data_lib, "load_tfds", lambda *a, allow_download: asked.append(allow_download) or 1 / 0
    )
    for no_download in (True, False):
        with pytest.raises(ZeroDivisionError):
            load_dataset(DataConfig(dataset="mnist", source="tfds", no_download=no_download))
    assert asked == [False, True]


def test_tfds_that_needs_tensorflow_to_download_says_how_to_install_it(monkeypatch):
    def source(dataset, split, data_dir, download):
        if download:
            raise ImportError("No module named 'tensorflow'")
        raise FileNotFoundError(f"{dataset} is not prepared")

    monkeypatch.setattr(tfds, "data_source", source)
    monkeypatch.setattr(download, "answering", lambda urls: urls)
    with pytest.raises(DataError, match=r"needs TensorFlow: pip install 'aejax\[tfds\]'"):
        data_lib.load_tfds("mnist", None)


def test_auto_downloads_itself_rather_than_have_tfds_download(tmp_path, monkeypatch):
    source, fetched = _TfdsNotPrepared(), []
    monkeypatch.setattr(tfds, "data_source", source)
    monkeypatch.setattr(download, "answering", lambda urls: urls)
    monkeypatch.setattr(download, "fetch_archives", lambda *a: fetched.append(a) or SUBSET_DIR)
    config = DataConfig(dataset="fashion_mnist", source="auto", data_dir=str(tmp_path))
    data = data_lib.load_auto(config)
    assert source.downloads == [False] and len(fetched) == 1
    assert len(data.train_labels) == SUBSET_SIZES[0]
