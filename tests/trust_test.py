"""What aejax trusts on disk: a cache folder runs as code, so only this user's own is used; an IDX
copy is used only while it holds what was recorded; a symlink never redirects a write."""

import os

import numpy as np
import pytest

from aejax.data import idx_cache
from aejax.data.idx import read_idx
from aejax.engine import compile_cache
from support import run_script_here, tiny_run_flags, write_idx

REAL = tiny_run_flags()
ROOT = os.geteuid() == 0


@pytest.fixture
def restore_compile_cache():
    """`enable` sets process-wide JAX options: put them back for the tests that follow."""
    import jax

    saved = jax.config.jax_compilation_cache_dir, compile_cache._kept_dir
    yield
    jax.config.update("jax_compilation_cache_dir", saved[0])
    compile_cache.keep_programs(saved[1])


def test_a_compile_cache_others_may_write_into_is_not_used(tmp_path, capsys, restore_compile_cache):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert compile_cache.enable(shared) is None
    err = capsys.readouterr().err
    assert err.startswith(f"warning: compile cache {shared} is not usable (others may write")
    assert err.count("\n") == 1
    own = tmp_path / "own"
    assert compile_cache.enable(own) == own
    assert own.stat().st_mode & 0o777 == 0o700 and not list(own.iterdir())[1:]


@pytest.mark.skipif(not ROOT, reason="giving a folder to another user needs root")
def test_a_compile_cache_of_another_user_is_not_used(tmp_path, capsys, restore_compile_cache):
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)
    assert compile_cache.enable(foreign) is None
    assert "belongs to user id 65534, not to this user (0)" in capsys.readouterr().err


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "aejax" / "idx"


def test_a_changed_idx_copy_is_not_used(tmp_path, cache_home):
    labels = np.arange(60, dtype=np.uint8) % 10
    path = write_idx(tmp_path / "t-idx1-ubyte", labels, gz=True)
    idx_cache.cached(path, read_idx)
    np.save(idx_cache.copy_path(path), np.full(60, 3, np.uint8))  # a valid copy, other labels
    np.testing.assert_array_equal(idx_cache.cached(path, read_idx), labels)
    np.testing.assert_array_equal(np.load(idx_cache.copy_path(path)), labels)  # made anew


def test_an_idx_cache_others_may_write_into_is_not_used(tmp_path, cache_home):
    cache_home.mkdir(parents=True)
    cache_home.chmod(0o777)
    path = write_idx(tmp_path / "t-idx1-ubyte", np.arange(5, dtype=np.uint8), gz=True)
    np.testing.assert_array_equal(idx_cache.cached(path, read_idx), np.arange(5))
    assert list(cache_home.iterdir()) == []


def test_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path):
    victim, work = tmp_path / "victim.txt", tmp_path / "work"
    victim.write_text("precious")
    work.mkdir()
    (work / ".lock").symlink_to(victim)
    result = run_script_here("pretrain", *REAL, "--epochs", "1", "--workdir", str(work))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {work / '.lock'} is a symbolic link")
    assert result.stderr.count("\n") == 1 and victim.read_text() == "precious"


@pytest.mark.skipif(not ROOT, reason="giving a folder to another user needs root")
def test_a_workdir_of_another_user_is_refused_unless_asked(tmp_path, monkeypatch):
    work = tmp_path / "theirs"
    work.mkdir()
    os.chown(work, 65534, 65534)
    result = run_script_here("pretrain", *REAL, "--epochs", "1", "--workdir", str(work))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "belongs to user id 65534, not to this user (0)" in result.stderr
    assert list(work.iterdir()) == []
    monkeypatch.setenv("AEJAX_FOREIGN_WORKDIR", "1")
    asked = run_script_here("pretrain", *REAL, "--epochs", "1", "--workdir", str(work))
    assert asked.returncode == 0, asked.stderr


def _planted_link(at, tmp_path):
    """A symlink at `at` to a file that must stay as it is, and that file."""
    target = tmp_path / "precious"
    target.write_text("precious")
    at.symlink_to(target)
    return target


def test_no_file_aejax_creates_is_written_through_a_planted_symlink(tmp_path):
    from aejax.data import download
    from aejax.errors import DataError
    from aejax.files import probe_writable, write_whole
    from aejax.run.workdir import write_text

    folder = tmp_path / "shared"
    folder.mkdir()
    planted = {
        "write probe": folder / f".write-test-{os.getpid()}",
        "cache entry": folder / f".entry.{os.getpid()}",
        "download": folder / download._temp_name("train.gz"),
        "config.json": folder / "config.json.tmp",
    }
    targets = {}
    for name, link in planted.items():
        (tmp_path / name).mkdir()
        targets[name] = _planted_link(link, tmp_path / name)
    with pytest.raises(OSError):
        probe_writable(folder)
    assert write_whole(folder / "entry", b"code") is False
    with pytest.raises(DataError, match="cannot write"):
        download._write_atomically(folder / "train.gz", b"archive")
    write_text(folder / "config.json", "{}")  # a leftover's name is removed, not followed
    assert (folder / "config.json").read_text() == "{}"
    assert {name: t.read_text() for name, t in targets.items()} == dict.fromkeys(
        planted, "precious"
    )
