"""Several processes, one run: 2 processes x 2 CPU devices on 127.0.0.1 (`jax.distributed`, gloo).

Every process is started under `timeout -k`, so a hung collective fails the test instead of CI.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from devices_worker import bitwise_equal, restored_encoder, restored_params

from aejax.run import checkpoint
from aejax.run.state_digest import DIGESTS
from support import REPO, SUBSET_DIR, run_script, run_script_here, saved_params

PROCESSES, DEVICES_EACH = 2, 2
LIMIT_S = 150  # per process; a healthy run of these tiny configs takes ~20 s
TINY = [
    *("--dataset", "fashion_mnist", "--source", "idx", "--data-dir", str(SUBSET_DIR)),
    *("--train-limit", "1000", "--test-limit", "200", "--hidden", "32", "--latent", "16"),
    "--no-progress",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_processes(workdir, *flags: str, process_1: tuple = ()) -> list[subprocess.Popen]:
    """`scripts/pretrain.py` as process 0 and 1 of one run, 2 CPU devices each; `process_1`:
    flags for process 1 alone (given last, so they win)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(DEVICES_EACH)}
    cluster = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", str(PROCESSES)]
    script = [sys.executable, str(REPO / "scripts" / "pretrain.py")]
    return [
        subprocess.Popen(
            ["timeout", "-k", "5", str(LIMIT_S), *script, *cluster, "--process-id", str(rank)]
            + ["--workdir", str(workdir), *TINY, *flags, *(process_1 if rank else ())],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
            start_new_session=True,  # its own process group: a kill reaches the Python process
        )
        for rank in range(PROCESSES)
    ]


def finish(processes) -> list[tuple[int, str, str]]:
    try:
        return [(p.wait(LIMIT_S + 10), p.stdout.read(), p.stderr.read()) for p in processes]
    finally:
        for p in processes:
            kill_group(p)


def kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def answer(stdout: str) -> dict | None:
    """The final metrics a script printed as JSON; gloo's own connection lines come before."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line == "{"), None)
    return None if start is None else json.loads("\n".join(lines[start:]))


def history(workdir) -> list[dict]:
    lines = (workdir / "pretrain" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_two_processes_train_as_one_and_only_process_0_writes(tmp_path):
    together, alone = tmp_path / "two-processes", tmp_path / "one-process"
    results = finish(start_processes(together, "--epochs", "3"))
    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    assert answer(results[0][1])["epochs_run_now"] == 3
    assert answer(results[1][1]) is None  # one answer per run: process 1 prints none
    assert "Traceback" not in results[1][2]
    done = run_script("pretrain", "--workdir", str(alone), *TINY, "--epochs", "3")
    assert done.returncode == 0, done.stderr
    for key in ("train_loss", "test_loss"):
        np.testing.assert_allclose(
            [r[key] for r in history(together)], [r[key] for r in history(alone)], rtol=1e-5
        )
    leaves = zip(
        _leaves(saved_params(together / "pretrain")),
        _leaves(saved_params(alone / "pretrain")),
        strict=True,
    )
    for a, b in leaves:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    names = {p.name for p in (together / "pretrain").iterdir()}
    assert {"config.json", "metrics.json", "metrics.jsonl", "curves.png"} <= names
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".shared-")]
    events = list((together / "pretrain" / "tensorboard").iterdir())
    assert len(events) == 1  # TensorBoard events from process 0 only
    # Restored in one process on one device, the 2-process checkpoint is what was saved, bit for
    # bit: the whole state, and the encoder alone as fine-tuning loads it.
    saved = saved_params(together / "pretrain")
    assert bitwise_equal(jax.tree.leaves(saved), restored_params(together / "pretrain", 1)[0])
    encoder = restored_encoder(together / "pretrain", 1)
    assert bitwise_equal(jax.tree.leaves(saved["encoder"]), encoder)
    # Each process holds a replica of the state, so the run records its digests as one process
    # does: the restores above and the resume below verify them.
    meta = json.loads((together / "pretrain/checkpoints/1/meta/metadata").read_text())
    assert set(meta[DIGESTS]) == {"params", "state"}
    # The 2-process checkpoint continues in one process on one device.
    more = run_script("pretrain", "--workdir", str(together), *TINY, "--epochs", "4")
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout)["epochs_run_now"] == 1 and "resuming from" in more.stderr


def test_sigterm_stops_both_processes_then_a_dead_one_stops_the_other_and_the_run_resumes(
    tmp_path,
):
    checkpoints = tmp_path / "pretrain" / "checkpoints"
    # SIGTERM on process 1 only (`timeout` passes it on): both stop after the same epoch.
    processes = start_processes(tmp_path, "--epochs", "40")
    wait_for_checkpoint(checkpoints, processes, after=0)
    processes[1].send_signal(signal.SIGTERM)
    results = finish(processes)
    assert [code for code, _, _ in results] == [128 + signal.SIGTERM] * 2, results
    stopped = checkpoint.latest_epoch(checkpoints)
    for _, _, err in results:
        assert f"stopped after epoch {stopped}," in err
    # kill -9 of process 1: process 0 ends soon after, the checkpoints stay.
    processes = start_processes(tmp_path, "--epochs", "40")
    try:
        wait_for_checkpoint(checkpoints, processes, after=stopped)
        os.killpg(processes[1].pid, signal.SIGKILL)  # `timeout` and the Python process it runs
        killed_at = time.monotonic()
        code = processes[0].wait(90)
        stopped_after = time.monotonic() - killed_at
    finally:
        for p in processes:
            kill_group(p)
    assert code != 0 and stopped_after < 60, (code, stopped_after)
    kept = checkpoint.latest_epoch(checkpoints)
    assert kept is not None and stopped < kept < 40
    # The same command on both resumes.
    results = finish(start_processes(tmp_path, "--epochs", str(kept + 1)))
    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    assert answer(results[0][1])["epochs_run_now"] == 1
    assert f"epoch {kept} done" in results[0][2]


def wait_for_checkpoint(checkpoints, processes, after: int) -> None:
    """Until a checkpoint newer than epoch `after` is committed (while process 0 still runs)."""
    deadline = time.monotonic() + LIMIT_S
    while (checkpoint.latest_epoch(checkpoints) or 0) <= after:
        assert time.monotonic() < deadline and processes[0].poll() is None
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("process_1", "says"),
    [
        (("--train-limit", "900"), "processes [1] loaded other data than process 0"),
        (("--workdir", "elsewhere"), "is not shared by all processes (processes [1] cannot see"),
    ],
    ids=["other-data", "unshared-workdir"],
)
def test_processes_that_disagree_on_data_or_workdir_are_refused(tmp_path, process_1, says):
    if process_1[0] == "--workdir":
        process_1 = ("--workdir", str(tmp_path / process_1[1]))
    results = finish(start_processes(tmp_path / "run", "--epochs", "1", process_1=process_1))
    assert [code for code, _, _ in results] == [2, 2], results
    for _, _, err in results:
        assert [line for line in err.splitlines() if line.startswith("error:")] == [
            next(line for line in err.splitlines() if says in line)
        ]
    assert not (tmp_path / "run" / "pretrain" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--coordinator", "127.0.0.1:1234"], "needs --num-processes and --process-id"),
        (["--num-processes", "2", "--process-id", "0"], "need --coordinator HOST:PORT"),
        (["--coordinator", "nohost", "--num-processes", "2", "--process-id", "0"], "HOST:PORT"),
        (["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"], "not in 0..1"),
    ],
)
def test_bad_cluster_flags_exit_2_in_one_line(tmp_path, flags, says):
    done = run_script_here("pretrain", "--workdir", str(tmp_path), *TINY, *flags)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert not (tmp_path / "pretrain").exists()


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]
