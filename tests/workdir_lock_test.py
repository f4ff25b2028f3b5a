"""One run per workdir: a second run is refused naming the first; a killed run never blocks."""

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from aejax.engine import distributed
from aejax.errors import UserError, WorkdirBusyError
from aejax.run.workdir_lock import LOCK_NAME, workdir_lock
from support import REPO, SUBSET_DIR, run_script_here, snapshot

TIMEOUT_S = 120
TINY = [
    "--dataset", "fashion_mnist", "--source", "idx", "--data-dir", str(SUBSET_DIR),
    "--hidden", "32", "--latent", "16", "--train-limit", "600", "--test-limit", "200",
    "--epochs", "1", "--no-progress", "--no-compile-cache",
]  # fmt: skip
# Another run: takes the workdir's lock, says so, and keeps it until it is killed.
HOLD = """
import sys, time
from aejax.run.workdir_lock import workdir_lock
with workdir_lock(sys.argv[1]):
    print("ready", flush=True)
    time.sleep(600)
"""
# Any other process asking the OS for the lock file's flock (no aejax involved): free or busy.
PROBE = """
import fcntl, sys
with open(sys.argv[1], "a") as lock:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("free")
    except BlockingIOError:
        print("busy")
"""


@contextlib.contextmanager
def _other_run(workdir):
    """A separate process that holds `workdir`'s lock until the block ends; then it is killed."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-c", HOLD, str(workdir)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], TIMEOUT_S)
        line = process.stdout.readline() if ready else "(nothing within the timeout)"
        assert line == "ready\n", f"the holder did not start: {line!r}"
        yield process
    finally:
        process.kill()
        process.communicate(timeout=TIMEOUT_S)


def _probe(workdir) -> str:
    """Whether another process could take `workdir`'s lock right now: "free" or "busy"."""
    command = [sys.executable, "-c", PROBE, str(workdir / LOCK_NAME)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=True)
    return done.stdout.strip()


def _holder_record(workdir) -> dict:
    return json.loads((workdir / LOCK_NAME).read_text())


def test_a_held_workdir_is_refused_naming_the_holder(tmp_path):
    with _other_run(tmp_path) as holder:
        record = _holder_record(tmp_path)
        with pytest.raises(WorkdirBusyError) as refused, workdir_lock(tmp_path):
            pytest.fail("entered a workdir another run holds")
        assert _probe(tmp_path) == "busy"  # the refusal took nothing from the holder
    assert record["pid"] == holder.pid and record["host"] == socket.gethostname()
    started = datetime.fromisoformat(record["started"])
    assert timedelta(0) <= datetime.now().astimezone() - started < timedelta(seconds=TIMEOUT_S)
    assert record["command"].startswith("-c ") and str(tmp_path) in record["command"]
    message = str(refused.value)
    assert message == (
        f"{tmp_path} is in use by another run (pid {holder.pid} on {record['host']}, started "
        f"{record['started']}: {record['command']}); wait for it to end, or use another workdir"
    )
    assert refused.value.settings == ("workdir",)


@pytest.mark.parametrize("extra", [[], ["--overwrite"]], ids=["resume", "overwrite"])
def test_a_second_run_exits_2_and_changes_nothing(tmp_path, extra):
    (tmp_path / "notes.txt").write_text("the user's own file\n")
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "metrics.json").write_text('{"test_mse": 0.5}\n')
    with _other_run(tmp_path) as holder:
        before, lock_before = snapshot(tmp_path), (tmp_path / LOCK_NAME).read_bytes()
        result = run_script_here("pretrain", *TINY, *extra, "--workdir", str(tmp_path))
        after, lock_after = snapshot(tmp_path), (tmp_path / LOCK_NAME).read_bytes()
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    busy = f"error: {tmp_path} is in use by another run (pid {holder.pid} on "
    assert result.stderr.startswith(busy)
    assert result.stderr.endswith(" (flags: --workdir)\n")
    assert after == before and set(before) == {"notes.txt", "pretrain/metrics.json"}
    assert lock_after == lock_before  # still names the run that holds it


def test_a_killed_runs_lock_does_not_block_the_next_run(tmp_path):
    with _other_run(tmp_path) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=TIMEOUT_S)
        assert _holder_record(tmp_path)["pid"] == holder.pid  # its record outlives it
        with workdir_lock(tmp_path):
            assert _holder_record(tmp_path)["pid"] == os.getpid()
            assert _probe(tmp_path) == "busy"
    assert _probe(tmp_path) == "free"


def test_nested_holds_release_at_the_outermost_exit(tmp_path):
    with workdir_lock(tmp_path):
        with workdir_lock(tmp_path / "." / ".." / tmp_path.name):  # the same folder, spelt anew
            assert _probe(tmp_path) == "busy"
        assert _probe(tmp_path) == "busy"  # the pipeline still holds what its stage released
    assert _probe(tmp_path) == "free"


def test_only_process_0_of_a_multi_process_run_takes_the_lock(tmp_path, monkeypatch):
    # Process 1 of a run whose process 0 took the lock: it holds nothing itself.
    monkeypatch.setattr(distributed, "is_primary", lambda: False)
    monkeypatch.setattr(distributed, "anyone", lambda flag: flag)
    with workdir_lock(tmp_path):
        assert _probe(tmp_path) == "free"
    # Process 1 of a run whose process 0 was refused: it stops too, saying why.
    monkeypatch.setattr(distributed, "anyone", lambda flag: True)
    with pytest.raises(WorkdirBusyError, match="process 0 of this run was refused"):
        with workdir_lock(tmp_path):
            pass


def test_an_unwritable_workdir_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match="cannot write to .*; choose another workdir") as error:
        with workdir_lock(tmp_path / "file" / "run"):
            pass
    assert error.value.settings == ("workdir",)
