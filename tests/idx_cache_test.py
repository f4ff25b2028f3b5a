import os

import numpy as np
import pytest

from aejax.config import DataConfig
from aejax.data import idx_cache
from aejax.data.datasets import load_dataset
from aejax.data.idx import read_idx
from support import write_idx, write_idx_dataset


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "aejax" / "idx"


def counting(reads):
    def read(path):
        reads.append(path)
        return read_idx(path)

    return read


def test_a_gzipped_file_is_decompressed_once_then_read_from_its_copy(tmp_path, cache_home):
    array = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    path, reads = write_idx(tmp_path / "x-idx3-ubyte", array, gz=True), []
    first = idx_cache.cached(path, counting(reads))
    again = idx_cache.cached(path, counting(reads))
    assert len(reads) == 1 and len(list(cache_home.glob("*.npy"))) == 1
    np.testing.assert_array_equal(first, array)
    np.testing.assert_array_equal(again, array)
    assert not again.flags.writeable and type(again) is np.ndarray  # as a freshly read array


def test_a_replaced_source_is_read_afresh(tmp_path, cache_home):
    path = write_idx(tmp_path / "x-idx1-ubyte", np.zeros(5, np.uint8), gz=True)
    idx_cache.cached(path, read_idx)
    write_idx(path.with_suffix(""), np.full(7, 9, np.uint8), gz=True)
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    np.testing.assert_array_equal(idx_cache.cached(path, read_idx), np.full(7, 9, np.uint8))


def test_a_damaged_copy_is_replaced_from_the_source(tmp_path, cache_home):
    array = np.arange(60, dtype=np.uint8)
    path, reads = write_idx(tmp_path / "x-idx1-ubyte", array, gz=True), []
    idx_cache.cached(path, counting(reads))
    copy = idx_cache.copy_path(path)
    copy.write_bytes(copy.read_bytes()[:70])  # cut short
    np.testing.assert_array_equal(idx_cache.cached(path, counting(reads)), array)
    np.testing.assert_array_equal(idx_cache.cached(path, counting(reads)), array)
    assert len(reads) == 2  # the damaged copy was read afresh once, then rewritten


def test_an_unwritable_cache_leaves_reading_the_source(tmp_path, monkeypatch):
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    path, reads = write_idx(tmp_path / "x-idx1-ubyte", np.arange(4, dtype=np.uint8), gz=True), []
    for _ in range(2):
        np.testing.assert_array_equal(idx_cache.cached(path, counting(reads)), np.arange(4))
    assert len(reads) == 2


def test_plain_idx_files_are_not_copied_and_datasets_load_the_same(tmp_path, cache_home):
    arrays = write_idx_dataset(tmp_path / "gz", gz=True)
    write_idx_dataset(tmp_path / "raw", gz=False)
    config = DataConfig(source="idx", data_dir=str(tmp_path / "raw"))
    load_dataset(config)
    assert not cache_home.exists()
    for _ in range(2):  # decompressed, then from the copies
        data = load_dataset(DataConfig(source="idx", data_dir=str(tmp_path / "gz")))
        train = arrays["train-images-idx3-ubyte"]
        np.testing.assert_array_equal(data.train_images.reshape(train.shape), train)
    assert len(list(cache_home.glob("*.npy"))) == 4
