"""What a stage shows besides its files: TensorBoard events, a profiler trace, a parameter table.

- **TensorBoard** (``WORKDIR/<stage>/tensorboard/``, on by default): per-epoch scalars
  (``train/*``, ``test/*``, ``val/*``, ``time/*``), the training loss of the steps (at most
  ``STEP_POINTS`` of a stage: every k-th beyond that), the run's hyperparameters (the HParams
  dashboard) and the stage's reconstruction figure as an image. Written with TensorBoard's own
  event-file writer and protos, so no TensorFlow is needed; only process 0 writes. A folder that
  cannot be written is one warning, and training goes on without it.
- **Profiler** (``profile_dir``): a `jax.profiler` trace of one steady-state epoch (the second this
  process trains; the only one when it trains one), with named regions ``epoch`` (its one
  program: training, then the test) and ``checkpoint``. Open ``*.trace.json.gz`` in
  https://ui.perfetto.dev, or the folder with TensorBoard's profile plugin.
- **Summary**: each parameter's path, shape and size, printed at the start of a stage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from aejax.engine import distributed
from aejax.errors import UserError

TENSORBOARD_DIR = "tensorboard"
QUEUED_EVENTS = 8192
# Per-step points of one series: what TensorBoard shows of it by default (its scalars plugin
# downsamples to 1000; `--samples_per_plugin scalars=N` asks for more).
STEP_POINTS = 1000
# Metrics rows (`aejax.engine.epochs.EpochRecord.as_dict`) -> TensorBoard tags:
# "test_loss" -> "test/loss".
TIME_TAGS = {"seconds": "time/epoch_s", "eval_s": "time/eval_s"}


@dataclasses.dataclass(frozen=True)
class Observe:
    """The run's choices: TensorBoard events (on by default) and a profiler trace folder."""

    tensorboard: bool = True
    profile_dir: str | None = None


DEFAULT = Observe()


class TensorBoardLog:
    """One stage's TensorBoard events; `seconds` is the time spent writing them."""

    def __init__(self, folder: Path):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        folder.mkdir(parents=True, exist_ok=True)
        # A queue that holds an epoch of per-step events: adding them never waits for the writer
        # thread (it frames and checksums each record in Python) while the next epoch trains.
        self.writer = EventFileWriter(str(folder), max_queue_size=QUEUED_EVENTS)
        self.seconds = 0.0

    @classmethod
    def open(cls, stage_dir: Path, enabled: bool) -> TensorBoardLog | None:
        """The stage's log, or None: disabled, not process 0, or the folder is not writable."""
        if not enabled or not distributed.is_primary():
            return None
        started = time.perf_counter()
        try:
            log = cls(stage_dir / TENSORBOARD_DIR)
        except OSError as err:
            warnings.warn(f"TensorBoard events not written ({err}); training goes on", stacklevel=2)
            return None
        log.seconds += time.perf_counter() - started
        return log

    def _write(self, step: int, values: list) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        started = time.perf_counter()
        summary = summary_pb2.Summary(value=values)
        self.writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
        self.seconds += time.perf_counter() - started

    def hyperparameters(self, config: dict[str, Any], metrics: list[str]) -> None:
        """The config's settings, flattened (``train.lr``), for the HParams dashboard."""
        from tensorboard.plugins.hparams import summary_v2

        values = {
            k: v for k, v in flatten(config).items() if isinstance(v, bool | int | float | str)
        }
        tags = [summary_v2.Metric(tag) for tag in metrics]
        config_pb = summary_v2.hparams_config_pb([summary_v2.HParam(k) for k in values], tags)
        self._write(0, list(config_pb.value) + list(summary_v2.hparams_pb(values).value))

    def epoch(self, row: dict[str, Any], examples: int) -> None:
        """One epoch's metrics row as scalars at step = its epoch number."""
        from tensorboard.compat.proto import summary_pb2

        scalars = {tag_of(k): v for k, v in row.items() if k != "epoch"}
        if row.get("seconds"):
            scalars["time/examples_per_s"] = examples / row["seconds"]
        values = [summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in scalars.items()]
        self._write(row["epoch"], values)

    def steps(self, tag: str, values, first_step: int, total_steps: int) -> None:
        """Per-step values (e.g. each step's training loss) as scalars at their step numbers:
        those of every `step_stride(total_steps)`-th step of the stage's `total_steps`."""
        from tensorboard.compat.proto import summary_pb2

        every = step_stride(total_steps)
        for step, value in enumerate(np.asarray(values, np.float64).tolist(), first_step):
            if step % every == 0:
                self._write(step, [summary_pb2.Summary.Value(tag=tag, simple_value=value)])

    def image(self, tag: str, png: Path, step: int) -> None:
        """A PNG the stage wrote (e.g. its reconstructions), as an image."""
        from tensorboard.compat.proto import summary_pb2

        if not png.is_file():
            return
        encoded = png.read_bytes()
        height, width = _png_size(encoded)
        image = summary_pb2.Summary.Image(
            height=height, width=width, colorspace=4, encoded_image_string=encoded
        )
        self._write(step, [summary_pb2.Summary.Value(tag=tag, image=image)])

    def close(self) -> None:
        started = time.perf_counter()
        self.writer.close()
        self.seconds += time.perf_counter() - started


def step_stride(total_steps: int) -> int:
    """Write every k-th step's scalar so that a stage's series holds at most `STEP_POINTS`: all
    TensorBoard keeps of one by default, and each event costs the host time while it trains."""
    return max(1, -(-total_steps // STEP_POINTS))


def tag_of(key: str) -> str:
    """``"test_loss"`` -> ``"test/loss"``, ``"seconds"`` -> ``"time/epoch_s"``."""
    if key in TIME_TAGS:
        return TIME_TAGS[key]
    split, _, name = key.partition("_")
    return f"{split}/{name}" if name else key


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}``."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _png_size(data: bytes) -> tuple[int, int]:
    """(height, width) from a PNG's IHDR chunk."""
    return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")


def profile_epoch(first: int, end: int) -> int:
    """The epoch (from 0) to trace in a run that trains epochs `first` .. `end` - 1."""
    return first + 1 if first + 1 < end else first


def prepare_profile_dir(profile_dir: str | None) -> None:
    """Refuse, before training, a profile folder that cannot be made."""
    if profile_dir is None:
        return
    try:
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"cannot use {profile_dir} for the profile: {err}", settings=("profile",)
        ) from None


def profiling(profile_dir: str | None):
    """A `jax.profiler` trace into `profile_dir` (a Perfetto trace beside it), or nothing."""
    if profile_dir is None or not distributed.is_primary():
        return contextlib.nullcontext()
    return jax.profiler.trace(profile_dir, create_perfetto_trace=True)


def parameter_table(params, title: str) -> str:
    """Each parameter's path, shape and size, and the total: the model at a glance."""
    rows = [
        ("/".join(str(getattr(k, "key", k)) for k in path), leaf.shape, int(np.prod(leaf.shape)))
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
    ]
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{title}", f"  {'parameter'.ljust(width)}  {'shape':>12}  {'size':>9}"]
    lines += [f"  {n.ljust(width)}  {str(s):>12}  {c:>9,}" for n, s, c in rows]
    lines.append(f"  {'total'.ljust(width)}  {'':>12}  {sum(c for *_, c in rows):>9,}")
    return "\n".join(lines)


def print_summary(params, title: str) -> None:
    """`parameter_table` on stderr (stdout carries the run's JSON result)."""
    print(parameter_table(params, title), file=sys.stderr)
