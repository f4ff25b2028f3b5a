"""Bad input: one clear line on stderr, exit status 2, and earlier results left untouched."""

import gzip
import shutil

import numpy as np
import pytest

from aejax.errors import UserError
from aejax.run import workdir
from support import (
    TINY_RUN,
    one_trained_epoch,
    run_script,
    run_script_here,
    snapshot,
    tiny_config,
    tiny_run_flags,
    write_idx,
    write_idx_dataset,
)

REAL = tiny_run_flags()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return one_trained_epoch(tmp_path_factory.mktemp("work"))


def _data_dir(tmp_path, case):
    folder = tmp_path / case
    if case == "empty":
        folder.mkdir()
        return folder
    write_idx_dataset(folder, n_train=200, n_test=50, side=10 if case == "small-images" else 28)
    if case == "truncated":
        path = folder / "train-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:-100])
    elif case == "bad-magic":
        write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(50), magic=0x0BADBEEF)
    elif case == "count-mismatch":
        write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(49))
    elif case == "empty-images":  # 200 images of 28 x 0 pixels
        header = (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (200, 28, 0))
        (folder / "train-images-idx3-ubyte").write_bytes(header)
    elif case == "gzip-bomb":  # 64 MB of zeros behind a header that declares 200 images
        path = folder / "train-images-idx3-ubyte"
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as out:
            out.write(path.read_bytes())
            out.write(bytes(64 << 20))
        path.unlink()
    return folder


@pytest.mark.parametrize(
    "script, case, fragment",
    [
        ("pretrain", "missing", "does not exist (flags: --data-dir)"),
        ("pretrain", "empty", "no IDX files for mnist"),
        ("pretrain", "truncated", "truncated or corrupt"),
        ("pretrain", "bad-magic", "magic number 0x0badbeef"),
        ("pretrain", "count-mismatch", "50 images but 49 labels"),
        ("pretrain", "empty-images", "declares an empty array (200, 28, 0)"),
        ("pretrain", "gzip-bomb", "holds more than"),
        # 10x10 images: the encoder pretrained on 784 inputs cannot take 100.
        ("finetune", "small-images", "encoder/hidden/kernel: pretrained (784, 32) vs classifier"),
    ],
)
def test_bad_data_exits_2_and_keeps_checkpoints(trained, tmp_path, script, case, fragment):
    before = snapshot(trained)
    data_dir = tmp_path / "missing" if case == "missing" else _data_dir(tmp_path, case)
    args = ["--source", "idx", "--data-dir", str(data_dir), *TINY_RUN, "--no-progress"]
    result = run_script_here(script, *args, "--workdir", str(trained))
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert snapshot(trained) == before


def test_input_size_follows_the_data(tmp_path):
    data_dir = _data_dir(tmp_path, "small-images")
    args = ["--source", "idx", "--data-dir", str(data_dir), *TINY_RUN, "--no-progress"]
    result = run_script("pretrain", *args, "--epochs", "1", "--workdir", str(tmp_path / "w"))
    assert result.returncode == 0, result.stderr
    assert '"num_train": 200' in result.stdout


@pytest.mark.parametrize(
    "extra, fragment, hint",
    [
        (
            ["--lr", "0.5"],
            "holds a run with a different config (train.lr 0.001 in the folder, 0.5 now); "
            "overwrite it, or use another workdir",
            " (flags: --overwrite, --workdir)",
        ),
        (["--epochs", "0"], "epochs must be positive", " (flags: --epochs)"),
        (["--batch-size", "0"], "batch size must be positive", None),
        (["--batch-size", "1001"], "exceeds the 1000 training examples", " (flags: --batch-size)"),
        (["--lr", "0"], "learning rate must be positive", " (flags: --lr)"),
    ],
)
def test_bad_flags_exit_2_and_keep_checkpoints(trained, extra, fragment, hint):
    before = snapshot(trained)
    result = run_script_here("pretrain", *REAL, *extra, "--workdir", str(trained))
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    if hint is not None:
        assert result.stderr.endswith(f"{hint}\n")
    assert snapshot(trained) == before


COORDINATOR = ["--coordinator", "127.0.0.1:99999", "--num-processes", "1", "--process-id", "0"]


@pytest.mark.parametrize(
    "script, extra, flag, message",
    [
        ("pretrain", ["--seed", "4294967296"], "--seed", "seed 4294967296 is not in [0, 42949"),
        ("pretrain", ["--latent", "0"], "--latent", "latent must be positive, got 0"),
        ("pretrain", ["--lr", "inf"], "--lr", "learning rate must be positive and finite, got"),
        ("pretrain", ["--noise", "gaussian:inf"], "--noise", "noise amount must be positive and"),
        ("pretrain", ["--loss", "vae", "--beta", "inf"], "--beta", "beta must be finite and >= 0"),
        ("finetune", ["--augment", "latent-mix:\u00b2"], "--augment", "augment must be none, lat"),
        (
            "finetune",
            ["--augment", "shift:1000", "--encoder", "scratch"],
            "--augment",
            "shift:1000 moves 28-pixel images out of the frame",
        ),
        ("pretrain", COORDINATOR, "--coordinator", "coordinator must be HOST:PORT (a port in 1"),
    ],
)
def test_out_of_range_values_are_one_line_naming_their_flag(tmp_path, script, extra, flag, message):
    result = run_script_here(script, *REAL, *extra, "--workdir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1
    assert result.stderr.endswith(f" (flags: {flag})\n")
    assert not (tmp_path / script).exists()


def test_auto_coordinator_outside_a_cluster_is_one_line(tmp_path):
    result = run_script("pretrain", *REAL, "--coordinator", "auto", "--workdir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot join the multi-process run (")
    assert result.stderr.endswith("(flags: --coordinator)\n") and result.stderr.count("\n") == 1


def test_unknown_dataset_is_one_line_naming_the_forms_it_may_take(tmp_path):
    result = run_script_here("pretrain", "--dataset", "cifar10", "--workdir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == (
        "error: dataset must be mnist, fashion_mnist, npz:PATH or idx:DIR, got 'cifar10' "
        "(flags: --dataset)\n"
    )
    assert not (tmp_path / "pretrain").exists()


def test_overwrite_replaces_a_run_of_another_config(trained, tmp_path):
    work = tmp_path / "copy"
    shutil.copytree(trained, work)
    result = run_script(
        "pretrain", *REAL, "--lr", "0.002", "--epochs", "1", "--overwrite", "--workdir", str(work)
    )
    assert result.returncode == 0, result.stderr
    assert '"lr": 0.002' in (work / "pretrain" / "config.json").read_text()


def test_corrupt_checkpoint_exits_2(trained, tmp_path):
    work = tmp_path / "copy"
    shutil.copytree(trained, work)
    for path in (work / "pretrain" / "checkpoints" / "1" / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\0" * 8)
    result = run_script_here("pretrain", *REAL, "--epochs", "2", "--workdir", str(work))
    assert result.returncode == 2, result.stderr
    assert "cannot be restored" in result.stderr and "Traceback" not in result.stderr


def test_diverging_loss_names_the_epoch_and_saves_nothing_bad(tmp_path):
    result = run_script_here("pretrain", *REAL, "--lr", "1e30", "--workdir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "NaN/Inf in epoch 1" in result.stderr and "(flags: --lr)" in result.stderr
    assert not (tmp_path / "pretrain" / "checkpoints" / "1").exists()


def test_unwritable_workdir_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_script_here("pretrain", *REAL, "--workdir", str(blocker / "run"))
    assert result.returncode == 2 and "cannot write to" in result.stderr


def test_too_little_disk_space_fails_before_training(tmp_path, monkeypatch, small_fashion):
    class Usage:
        free = 1024

    monkeypatch.setattr(workdir.shutil, "disk_usage", lambda path: Usage())
    from aejax.stages import pretrain

    with pytest.raises(UserError, match="MiB free on the disk"):
        pretrain(tiny_config("pretrain", tmp_path), small_fashion, progress=False)
    assert not (tmp_path / "pretrain" / "checkpoints").exists()


def test_keeping_more_checkpoints_than_epochs_asks_room_for_the_epochs_only(tmp_path):
    extra = ["--epochs", "1", "--keep-checkpoints", "1000000"]  # ~2 TB if each were written
    result = run_script_here("pretrain", *REAL, *extra, "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "pretrain/checkpoints").iterdir()) == ["1"]
