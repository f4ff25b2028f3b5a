"""Damaged files in a stage folder: each gives one line and exit 2 from the command that reads
it, and leaves the run's checkpoints as they were."""

import shutil
import time

import jax
import numpy as np
import pytest

from aejax import load_stage
from aejax.model.models import ENCODER
from aejax.run.checkpoint import committed_epochs
from aejax.run.saved_stage import load_pretrained_encoder
from aejax.run.saved_step import restore_subtree
from support import (
    SUBSET_DIR,
    one_trained_epoch,
    run_script,
    run_script_async,
    run_script_here,
    snapshot,
    tiny_run_flags,
)

REAL = tiny_run_flags()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return one_trained_epoch(tmp_path_factory.mktemp("work"))


def _damage_config(path, damage):
    if damage == "a folder":
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes(damage)


CONFIG_DAMAGE = {
    "garbage": b"{not json",
    "empty": b"",
    "not utf-8": b"\xff\xfe\x00{",
    "a list": b"[1, 2]",
    "a number for a section": b'{"stage": "pretrain", "train": 5}',
    "a wrong type in a field": b'{"stage": "pretrain", "train": {"epochs": "ten"}}',
    "an identity that is no object": b'{"stage": "pretrain", "identity": 3}',
    "an unknown stage": b'{"stage": "train"}',
    "a folder": "a folder",
}


@pytest.mark.parametrize("damage", list(CONFIG_DAMAGE))
@pytest.mark.parametrize("command", ["pretrain", "evaluate"])
def test_a_damaged_config_json_is_one_line_and_keeps_the_checkpoints(
    trained, tmp_path, command, damage
):
    work = tmp_path / "copy"
    shutil.copytree(trained, work)
    _damage_config(work / "pretrain" / "config.json", CONFIG_DAMAGE[damage])
    checkpoints = snapshot(work / "pretrain" / "checkpoints")
    if command == "pretrain":
        result = run_script_here("pretrain", *REAL, "--epochs", "2", "--workdir", str(work))
    else:
        result = run_script_here("evaluate", str(work / "pretrain"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {work / 'pretrain' / 'config.json'} is not a stage")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert snapshot(work / "pretrain" / "checkpoints") == checkpoints


def test_overwrite_starts_over_from_a_damaged_config_json(trained, tmp_path):
    work = tmp_path / "copy"
    shutil.copytree(trained, work)
    (work / "pretrain" / "config.json").write_bytes(b"{not json")
    args = ["--epochs", "1", "--overwrite", "--workdir", str(work)]
    result = run_script_here("pretrain", *REAL, *args)
    assert result.returncode == 0, result.stderr
    assert '"stage": "pretrain"' in (work / "pretrain" / "config.json").read_text()


META_DAMAGE = {
    "no history": (b"{}", "has no history in its metadata, not epochs 1 to 1"),
    "a history of the wrong type": (b'{"history": 3}', "has no history in its metadata"),
    "an empty history": (b'{"history": []}', "has a history of epochs [] in its metadata"),
}


@pytest.mark.parametrize("damage", list(META_DAMAGE))
def test_damaged_checkpoint_metadata_is_one_line_not_a_wrong_epoch_count(trained, tmp_path, damage):
    work = tmp_path / "copy"
    shutil.copytree(trained, work)
    content, message = META_DAMAGE[damage]
    (work / "pretrain/checkpoints/1/meta/metadata").write_bytes(content)
    result = run_script_here("pretrain", *REAL, "--epochs", "3", "--workdir", str(work))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and result.stderr.startswith("error: checkpoint ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in (work / "pretrain/checkpoints").iterdir()) == ["1"]
    evaluated = run_script_here("evaluate", str(work / "pretrain"))
    assert evaluated.returncode == 2 and evaluated.stderr.count("\n") == 1, evaluated.stderr
    assert message in evaluated.stderr and evaluated.stderr.startswith("error: checkpoint ")


def test_a_mirrors_credentials_are_never_written_or_printed(tmp_path):
    mirror = "http://reader:s3cret-token@127.0.0.1:9/mnist/"
    args = [*REAL, "--source", "idx", "--mirror", mirror, "--epochs", "1"]
    result = run_script("pretrain", *args, "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == ".lock" for p in written) and any("events" in p.name for p in written)
    assert [p for p in written if b"s3cret" in p.read_bytes()] == []
    config = (tmp_path / "pretrain/config.json").read_text()
    assert '"mirror": "http://***@127.0.0.1:9/mnist/"' in config


def test_a_run_resumes_on_the_same_data_read_from_another_place(trained, tmp_path):
    work, moved = tmp_path / "copy", tmp_path / "moved"
    shutil.copytree(trained, work)
    shutil.copytree(SUBSET_DIR, moved)
    mirror = "http://127.0.0.1:9/another-mirror/"  # where it would be fetched from, if missing
    args = ["--source", "idx", "--data-dir", str(moved), "--mirror", mirror, "--epochs", "2"]
    result = run_script_here("pretrain", *REAL, *args, "--workdir", str(work))
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stderr
    assert sorted(p.name for p in (work / "pretrain/checkpoints").iterdir()) == ["1", "2"]


def _replace_state(checkpoint_dir, other_checkpoint_dir):
    """The saved arrays of `checkpoint_dir` changed on disk (for those of another checkpoint of
    the same shapes: files Orbax reads without complaint), its metadata left as it was."""
    shutil.rmtree(checkpoint_dir / "state")
    shutil.copytree(other_checkpoint_dir / "state", checkpoint_dir / "state")


def _largest_chunk(step):
    return max((step / "state/ocdbt.process_0/d").iterdir(), key=lambda p: p.stat().st_size)


def _flip_a_byte(path, every: int | None = None):
    """One byte of `path` flipped, in its middle; with `every`, one in each `every` bytes."""
    data = bytearray(path.read_bytes())
    for at in [len(data) // 2] if every is None else range(0, len(data), every):
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _two_lines(stderr: str) -> list[str]:
    """The two lines `stderr` holds, and nothing else (else the test shows all of it)."""
    lines = stderr.splitlines()
    assert len(lines) == 2, stderr
    return lines


def _cut(path, keep=0.5):
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


# Each way a step's files change on disk, and what the warning says of it.
STEP_DAMAGE = {
    "another step's arrays": (lambda step: _replace_state(step, step.parent / "1"), "digest"),
    "a byte flipped in a data chunk": (lambda step: _flip_a_byte(_largest_chunk(step)), "digest"),
    "a data chunk cut short": (lambda step: _cut(_largest_chunk(step)), "cannot be restored"),
    "the array metadata cut short": (lambda step: _cut(step / "state/_METADATA", 0.01), "restored"),
    "the manifest cut short": (lambda step: _cut(step / "state/manifest.ocdbt", 0.1), "restored"),
    "metadata that is not JSON": (
        lambda step: (step / "meta/metadata").write_bytes(b"{not json"),
        "cannot be restored",
    ),
}


@pytest.fixture(scope="module")
def two_epochs_and_three(tmp_path_factory):
    """A stage of two epochs, and the same stage run to three epochs without a break."""
    run = [*REAL, "--no-tensorboard"]
    two, three = (tmp_path_factory.mktemp(name) for name in ("two", "three"))
    for work, epochs in ((two, "2"), (three, "3")):
        assert (
            run_script("pretrain", *run, "--epochs", epochs, "--workdir", str(work)).returncode == 0
        )
    return two, load_stage(three / "pretrain").params


@pytest.mark.parametrize("damage", list(STEP_DAMAGE))
def test_a_changed_checkpoint_is_set_aside_and_the_resume_is_bit_identical(
    two_epochs_and_three, tmp_path, damage
):
    two, uninterrupted = two_epochs_and_three
    work = tmp_path / "copy"
    shutil.copytree(two, work)
    checkpoints = work / "pretrain/checkpoints"
    first = snapshot(checkpoints / "1")
    change, says = STEP_DAMAGE[damage]
    change(checkpoints / "2")
    run = [*REAL, "--no-tensorboard", "--epochs", "3", "--workdir", str(work)]
    result = run_script_here("pretrain", *run)
    assert result.returncode == 0, result.stderr
    warning, resuming = _two_lines(result.stderr)
    assert warning.startswith("warning: checkpoint ") and says in warning
    assert warning.endswith("set aside as " + str(checkpoints / "2.damaged"))
    assert resuming.startswith("resuming from ") and "(epoch 1 done)" in resuming
    assert (checkpoints / "2.damaged").is_dir() and snapshot(checkpoints / "1") == first
    ours = load_stage(work / "pretrain").params
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, ours, uninterrupted)))


def test_a_changed_only_checkpoint_is_one_line_from_a_resume_and_from_evaluate(trained, tmp_path):
    work, other = tmp_path / "copy", tmp_path / "other"
    shutil.copytree(trained, work)
    seed = ["--seed", "1", "--epochs", "1", "--no-tensorboard", "--workdir", str(other)]
    assert run_script_here("pretrain", *REAL, *seed).returncode == 0
    _replace_state(work / "pretrain/checkpoints/1", other / "pretrain/checkpoints/1")
    evaluated = run_script_here("evaluate", str(work / "pretrain"))
    assert evaluated.returncode == 2 and evaluated.stderr.count("\n") == 1, evaluated.stderr
    assert "does not hold what was saved (its params digest differs" in evaluated.stderr
    events = snapshot(work / "pretrain/tensorboard")
    resumed = run_script_here("pretrain", *REAL, "--epochs", "2", "--workdir", str(work))
    assert resumed.returncode == 2, resumed.stderr
    assert snapshot(work / "pretrain/tensorboard") == events  # no events file of a failed start
    assert resumed.stderr.splitlines()[-1].startswith("error: no checkpoint in ")
    assert "can be restored whole" in resumed.stderr and "Traceback" not in resumed.stderr
    assert (work / "pretrain/checkpoints/1.damaged").is_dir()  # set aside, never deleted


def test_a_full_disk_is_one_line_and_the_run_resumes_bit_identical(trained, tmp_path):
    work, whole = tmp_path / "copy", tmp_path / "whole"
    shutil.copytree(trained, work)
    before = snapshot(work / "pretrain/checkpoints")
    args = [*REAL, "--no-compile-cache", "--epochs", "3"]
    # Files of 100 kB at most: the next checkpoint's arrays do not fit, as on a full disk.
    full = run_script("pretrain", *args, "--workdir", str(work), file_size_limit=100_000)
    assert full.returncode == 2
    resuming, error = _two_lines(full.stderr)
    assert resuming.startswith("resuming from ") and error.startswith("error: the disk is full")
    assert "(File too large); free space and run the same command again" in error
    after = snapshot(work / "pretrain/checkpoints")
    # Nothing lost: epoch 1 as it was; beside it only the unfinished save (removed on resume).
    assert {k: v for k, v in after.items() if "orbax-checkpoint-tmp" not in k} == before
    assert run_script_here("pretrain", *args, "--workdir", str(work)).returncode == 0
    assert run_script_here("pretrain", *args, "--workdir", str(whole)).returncode == 0
    ours, theirs = (load_stage(w / "pretrain").params for w in (work, whole))
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, ours, theirs)))


def test_a_checkpoint_orbax_cannot_read_is_one_line_without_its_threads_noise(trained, tmp_path):
    for attempt in range(2):  # the noise came in about half the runs
        work = tmp_path / str(attempt)
        shutil.copytree(trained, work)
        for manifest in (work / "pretrain/checkpoints/1/state").rglob("manifest.ocdbt"):
            manifest.write_bytes(manifest.read_bytes()[:20])
        result = run_script("pretrain", *REAL, "--epochs", "2", "--workdir", str(work))
        assert result.returncode == 2
        warning, error = _two_lines(result.stderr)
        assert warning.startswith("warning: checkpoint ") and "cannot be restored" in warning
        assert error.startswith("error: no checkpoint in ") and "can be restored whole" in error
        assert (work / "pretrain/checkpoints/1.damaged").is_dir()  # set aside, never deleted


@pytest.mark.parametrize("item", ["meta", "state"])
def test_a_step_missing_an_item_is_passed_over_by_the_first_resume(tmp_path, item):
    args = [*REAL, "--no-tensorboard", "--workdir", str(tmp_path)]
    assert run_script_here("pretrain", *args, "--epochs", "2").returncode == 0
    shutil.rmtree(tmp_path / "pretrain/checkpoints/2" / item)  # a kill during Orbax's deletion
    result = run_script_here("pretrain", *args, "--epochs", "3")
    assert result.returncode == 0, result.stderr
    assert "(epoch 1 done)" in result.stderr
    assert sorted(p.name for p in (tmp_path / "pretrain/checkpoints").iterdir()) == ["1", "2", "3"]


def test_a_file_where_the_checkpoints_belong_is_one_line(tmp_path):
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain/checkpoints").write_text("not a folder")
    result = run_script_here("pretrain", *REAL, "--epochs", "1", "--workdir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot open the checkpoints folder ")
    assert result.stderr.count("\n") == 1


def test_evaluate_passes_over_a_newest_checkpoint_it_cannot_trust(tmp_path):
    args = [*REAL, "--no-tensorboard", "--workdir", str(tmp_path)]
    assert run_script_here("pretrain", *args, "--epochs", "2").returncode == 0
    checkpoints = tmp_path / "pretrain/checkpoints"
    _replace_state(checkpoints / "2", checkpoints / "1")
    result = run_script_here("evaluate", str(tmp_path / "pretrain"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning: checkpoint ") and result.stderr.count("\n") == 1
    assert "reading the one before" in result.stderr and '"epoch": 1' in result.stdout


def test_checkpoints_of_other_widths_under_a_matching_config_are_one_line(trained, tmp_path):
    work, narrow = tmp_path / "copy", tmp_path / "narrow"
    shutil.copytree(trained, work)
    flags = [*REAL, "--hidden", "16", "--epochs", "1", "--no-tensorboard"]
    assert run_script_here("pretrain", *flags, "--workdir", str(narrow)).returncode == 0
    shutil.rmtree(work / "pretrain/checkpoints")
    shutil.copytree(narrow / "pretrain/checkpoints", work / "pretrain/checkpoints")
    # In a process of their own, as a user runs them: what Orbax's threads print at exit shows.
    resumed = run_script("pretrain", *REAL, "--epochs", "2", "--workdir", str(work))
    evaluated = run_script("evaluate", str(work / "pretrain"))
    for result in (resumed, evaluated):
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("error: checkpoint ")
    assert "holds arrays of other shapes than the model's" in evaluated.stderr


def test_a_stage_read_while_its_run_still_writes_reads_a_whole_checkpoint(tmp_path, capfd):
    """`load_stage` and the pretrained encoder read from a run that saves a checkpoint and deletes
    the one before it every few milliseconds: each read gets a whole checkpoint, never an error."""
    stage = tmp_path / "pretrain"
    flags = [*REAL, "--no-tensorboard", "--no-compile-cache", "--train-limit", "200"]
    run = run_script_async(
        "pretrain", *flags, "--epochs", "30", "--keep-checkpoints", "1", "--workdir", str(tmp_path)
    )
    try:
        while not committed_epochs(stage / "checkpoints"):
            assert run.poll() is None, run.communicate()[1]
            time.sleep(0.05)
        epochs, first = [], load_stage(stage).params
        while run.poll() is None:
            epochs.append(load_stage(stage).epoch)
            encoder = load_pretrained_encoder(stage, first)
            assert jax.tree.structure(encoder) == jax.tree.structure(first[ENCODER])
    finally:
        run.kill()
    assert run.wait() == 0, run.stderr.read()
    assert len(set(epochs)) > 3 and epochs == sorted(epochs), epochs  # it read a moving run


def test_finetuning_passes_over_a_changed_pretrained_checkpoint_and_refuses_when_none_is_good(
    two_epochs_and_three, tmp_path
):
    two, _ = two_epochs_and_three
    work = tmp_path / "copy"
    shutil.copytree(two, work)
    checkpoints = work / "pretrain/checkpoints"
    # The params are somewhere in one of the chunks, beside the optimizer's state: a byte in each
    # 4 kB of each chunk is sure to change them.
    for chunk in (checkpoints / "2/state/ocdbt.process_0/d").iterdir():
        _flip_a_byte(chunk, every=4096)
    params = load_stage(two / "pretrain").params  # its encoder has the classifier's shapes
    first = restore_subtree(two / "pretrain/checkpoints", 1, {"params": params})["params"]
    encoder = load_pretrained_encoder(work / "pretrain", params)
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, encoder, first[ENCODER])))
    flags = [*REAL, "--no-tensorboard", "--epochs", "1", "--workdir", str(work)]
    result = run_script_here("finetune", *flags)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning: checkpoint ") and result.stderr.count("\n") == 1
    assert "reading the one before" in result.stderr
    for chunk in (checkpoints / "1/state/ocdbt.process_0/d").iterdir():
        _flip_a_byte(chunk, every=4096)
    refused = run_script_here("finetune", *flags, "--overwrite")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 2, refused.stderr
    assert refused.stderr.splitlines()[-1].startswith("error: checkpoint ")
    assert "Traceback" not in refused.stderr
    assert sorted(p.name for p in checkpoints.iterdir()) == ["1", "2"]  # nothing set aside here


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs of its own (root, where mounting is allowed), unmounted after the test."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here (root and mount rights needed): {made.stderr.strip()}"
        )
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder):
    """Write into `folder` until its disk is full; the filler file."""
    filler = folder / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(bytes(1 << 16))
                out.flush()
        except OSError:
            pass
    return filler


def test_a_disk_that_fills_during_a_run_is_one_line_and_the_run_resumes_bit_identical(
    small_disk, tmp_path
):
    work, whole = small_disk / "work", tmp_path / "whole"
    args = [*REAL, "--no-compile-cache", "--epochs", "30"]
    run = run_script_async("pretrain", *args, "--workdir", str(work))
    deadline = time.monotonic() + 120
    while (latest := committed_epochs(work / "pretrain/checkpoints")[:1]) == []:
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    filler = _fill(small_disk)  # another program fills the disk while the run trains
    _, err = run.communicate(timeout=120)
    assert run.returncode == 2, err
    # The file, where the error names it, else the stage folder: which of them fills up first
    # (a checkpoint's chunk, a metrics file, an events file) depends on timing.
    assert err.startswith("error: the disk is full writing ") and err.count("\n") == 1
    assert str(work / "pretrain") in err
    assert "(No space left on device); free space and run the same command again" in err
    kept = committed_epochs(work / "pretrain/checkpoints")
    assert kept and kept[0] >= latest[0]  # nothing saved before the disk filled is lost
    filler.unlink()
    assert run_script_here("pretrain", *args, "--workdir", str(work)).returncode == 0
    assert run_script_here("pretrain", *args, "--workdir", str(whole)).returncode == 0
    ours, theirs = (load_stage(w / "pretrain").params for w in (work, whole))
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, ours, theirs)))


def test_a_full_disk_names_the_file_or_else_the_folder_being_written():
    import errno

    from aejax.errors import disk_full

    folder = "/runs/x/pretrain"
    unnamed = disk_full(OSError(errno.ENOSPC, "No space left on device"), folder)
    assert f"the disk is full writing into {folder} (No space left on device)" in str(unnamed)
    named = OSError(errno.EFBIG, "File too large", f"{folder}/metrics.json")
    assert f"the disk is full writing {folder}/metrics.json (File too large)" in str(
        disk_full(named, folder)
    )
    assert disk_full(ValueError("not a disk"), folder) is None


def test_after_an_error_line_nothing_more_is_printed_at_exit():
    # What a failed Orbax restore leaves to the interpreter's exit: a coroutine never awaited
    # (seen once in a clean environment), threads' tracebacks, asyncio's logs.
    import subprocess
    import sys

    code = (
        "import asyncio, logging, threading, warnings\n"
        "from aejax import quiet\n"
        "quiet.until_exit()\n"
        "async def read(): pass\n"
        "read()\n"  # never awaited: a RuntimeWarning when it is collected
        "warnings.warn('coroutine was never awaited', RuntimeWarning)\n"
        "threading.Thread(target=lambda: 1 / 0).start()\n"
        "logging.getLogger('asyncio').error('Task exception was never retrieved')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
