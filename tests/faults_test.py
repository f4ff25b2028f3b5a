"""Damaged files in a stage folder: each gives one line and exit 2 from the command that reads
it, and leaves the run's checkpoints as they were."""

import shutil

import pytest

from support import SUBSET_DIR, run_script, run_script_here, snapshot

TINY = ["--hidden", "32", "--latent", "16", "--train-limit", "1000", "--test-limit", "200"]
REAL = ["--dataset", "fashion_mnist", "--data-dir", str(SUBSET_DIR), *TINY, "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workdir holding one finished pretrain epoch."""
    work = tmp_path_factory.mktemp("work")
    result = run_script("pretrain", *REAL, "--epochs", "1", "--workdir", str(work))
    assert result.returncode == 0, result.stderr
    return work


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
    "not json": (b"{not json", "cannot be restored ("),
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
    args = ["--source", "idx", "--data-dir", str(moved), "--epochs", "2"]
    result = run_script_here("pretrain", *REAL, *args, "--workdir", str(work))
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stderr
    assert sorted(p.name for p in (work / "pretrain/checkpoints").iterdir()) == ["1", "2"]
