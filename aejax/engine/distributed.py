"""Several processes (hosts) training one run, on JAX's own distributed runtime.

`initialize` starts `jax.distributed` before anything else touches JAX. Every process then runs
the same program on the same data (checked: `require_same_data`) and takes part in every compiled
program and every Orbax call; only the primary process (0) writes JSON, figures, progress bars and
log lines (`is_primary`). The workdir must be one folder seen by all (`require_shared_workdir`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from aejax.errors import DataError, UserError

# Bounded waits: a peer that never arrives or dies makes the others fail in seconds, not hang.
INIT_TIMEOUT_S, HEARTBEAT_TIMEOUT_S, SHUTDOWN_TIMEOUT_S = 60, 10, 10
AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class Cluster:
    """How this process joins a multi-process run: explicit addresses, `auto`, or not at all."""

    coordinator: str | None = None  # HOST:PORT of process 0, or "auto" (SLURM, Cloud TPU, ...)
    num_processes: int | None = None
    process_id: int | None = None

    def __post_init__(self):
        given = [self.num_processes is not None, self.process_id is not None]
        if self.coordinator in (None, AUTO):
            if any(given):
                raise UserError(
                    "--num-processes and --process-id need --coordinator HOST:PORT",
                    settings=("coordinator",),
                )
            return
        if not all(given):
            raise UserError(
                "--coordinator HOST:PORT needs --num-processes and --process-id too",
                settings=("num_processes", "process_id"),
            )
        host, _, port = self.coordinator.rpartition(":")
        if not host or not (port.isascii() and port.isdigit() and 0 < int(port) < 2**16):
            raise UserError(
                f"coordinator must be HOST:PORT (a port in 1..65535), got {self.coordinator!r}",
                settings=("coordinator",),
            )
        if not 0 <= self.process_id < self.num_processes:
            raise UserError(
                f"process id {self.process_id} is not in 0..{self.num_processes - 1}",
                settings=("process_id", "num_processes"),
            )


def initialize(cluster: Cluster) -> None:
    """Join the run `cluster` describes (nothing for a single process), with bounded timeouts."""
    if cluster.coordinator is None:
        return
    explicit = {}
    if cluster.coordinator != AUTO:
        explicit = {
            "coordinator_address": cluster.coordinator,
            "num_processes": cluster.num_processes,
            "process_id": cluster.process_id,
        }
    try:
        jax.distributed.initialize(
            **explicit,
            initialization_timeout=INIT_TIMEOUT_S,
            heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
            shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S,
        )
    except ValueError as error:  # auto outside a cluster JAX recognises, among others
        reason = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else "?"
        raise UserError(
            f"cannot join the multi-process run ({reason}); give --coordinator HOST:PORT, "
            "--num-processes and --process-id",
            settings=("coordinator",),
        ) from None


def is_multiprocess() -> bool:
    """Whether this process is one of several (asked without starting a JAX backend)."""
    return jax.distributed.is_initialized() and jax.process_count() > 1


def is_primary() -> bool:
    """True in the process that writes the run's files and output (always, for one process)."""
    return not is_multiprocess() or jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches `name` (a no-op for one process)."""
    if is_multiprocess():
        multihost_utils.sync_global_devices(name)


def anyone(flag: bool) -> bool:
    """True in every process if `flag` is true in any (e.g. one of them was asked to stop)."""
    if not is_multiprocess():
        return flag
    return bool(multihost_utils.process_allgather(np.asarray([flag], np.int32)).any())


def data_digest(*arrays: np.ndarray) -> np.ndarray:
    """A short SHA-256 digest of `arrays` (values and shapes), as uint32s to compare."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return np.frombuffer(digest.digest()[:16], np.uint32)


def require_same_data(*arrays: np.ndarray) -> None:
    """Refuse to train when the processes loaded different data: "replicated" data that differs
    between processes is not detected by JAX, it silently trains on a mixture."""
    if not is_multiprocess():
        return
    digests = multihost_utils.process_allgather(data_digest(*arrays))
    if not (digests == digests[0]).all():
        differ = [i for i, d in enumerate(digests) if not (d == digests[0]).all()]
        raise DataError(f"processes {differ} loaded other data than process 0; give all the same")


def require_shared_workdir(workdir: str | Path) -> None:
    """Refuse a workdir that is not one folder seen by every process (checkpoints need that)."""
    if not is_multiprocess():
        return
    workdir = Path(workdir)
    token = np.frombuffer(secrets.token_bytes(8), np.uint32)
    token = multihost_utils.broadcast_one_to_all(token)
    probe = workdir / f".shared-{token[0]:08x}{token[1]:08x}"
    if is_primary():
        workdir.mkdir(parents=True, exist_ok=True)
        probe.write_text("shared")
    barrier("aejax: workdir probe written")
    sees = np.asarray([probe.is_file()], np.int32)
    everyone = multihost_utils.process_allgather(sees).reshape(-1)
    barrier("aejax: workdir probe read")
    if is_primary():
        probe.unlink(missing_ok=True)
    if not everyone.all():
        blind = [i for i, seen in enumerate(everyone) if not seen]
        raise UserError(
            f"{workdir} is not shared by all processes (processes {blind} cannot see what "
            "process 0 writes there); use a folder on a file system every host mounts",
            settings=("workdir",),
        )
