"""A stage's folder: created and checked before training, refused when it holds another run.

Files are written through a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax

from aejax.config import StageConfig
from aejax.engine import distributed
from aejax.errors import CheckpointError, UserError
from aejax.files import create_new, probe_writable

FREE_SPACE_MARGIN_BYTES = 16 * 2**20  # metrics, figures, Orbax metadata
# Every stage's files; each kind of stage adds its figures (`aejax.model.tasks.Task.figure_files`).
STAGE_OUTPUTS = ("config.json", "metrics.json", "metrics.jsonl", "curves.png")
# What config.json records under "identity", for what the config cannot say: the data a run used
# (`aejax.Dataset.fingerprint`) and its model, optimizer and objective, given or built from the
# config (the `fingerprint` functions of `aejax.model.models`, `.optim`, `.objectives`).
IDENTITY = "identity"
TRAINED_ON, MODEL, OPTIMIZER, OBJECTIVE = "trained_on", "model", "optimizer", "objective"
STAGE_FOLDERS = ("checkpoints", "tensorboard")
DATA_LOCATION = ("source", "data_dir", "mirror", "no_download")  # where, not what


def prepare_stage_dir(config: StageConfig, state=None, identity: dict | None = None) -> Path:
    """Create the stage folder, check it is writable, refuse one holding another run: another
    config, or another `identity` (what config.json records beside the config, `IDENTITY`).

    Checked before any training, so a run fails in seconds rather than after an hour.
    """
    stage_dir = config.stage_dir
    try:
        stage_dir.mkdir(parents=True, exist_ok=True)
        if distributed.is_primary():  # the one process that writes here
            probe_writable(stage_dir)
    except OSError as err:
        raise UserError(
            f"cannot write to {stage_dir}: {err.strerror}; choose another workdir",
            settings=("workdir",),
        ) from err
    if state is not None:
        # A run never holds more checkpoints than it has epochs, whatever it may keep.
        kept = min(config.train.keep_checkpoints, config.train.epochs)
        _require_free_space(stage_dir, state, kept)
    config_path = stage_dir / "config.json"
    if config_path.exists():
        saved, saved_identity = read_stage_config(stage_dir)
        differences = config_differences(resume_key(saved), resume_key(config))
        both = [k for k in saved_identity if k in (identity or {})]
        differences += config_differences(  # earlier versions kept none: nothing to compare
            {k: _identity_key(k, saved_identity[k]) for k in both},
            {k: _identity_key(k, identity[k]) for k in both},
        )
        if differences:
            raise UserError(
                f"{stage_dir} holds a run with a different config ({'; '.join(differences)}); "
                "overwrite it, or use another workdir",
                settings=("overwrite", "workdir"),
            )
    record = config.to_dict() | ({IDENTITY: identity} if identity else {})
    write_text(config_path, json.dumps(record, indent=2, sort_keys=True))
    return stage_dir


def read_stage_config(stage_dir: Path) -> tuple[StageConfig, dict[str, Any]]:
    """A stage folder's config, and what its config.json records of the run's identity
    (`IDENTITY`; empty for a folder of an earlier version)."""
    path = Path(stage_dir) / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise TypeError(f"it holds a JSON {type(raw).__name__}, not an object")
        identity = raw.pop(IDENTITY, {})
        if not isinstance(identity, dict):
            raise TypeError(f"its {IDENTITY} is a {type(identity).__name__}, not an object")
        return StageConfig.from_dict(raw), identity
    except (OSError, ValueError, TypeError, KeyError, AttributeError, UserError) as err:
        # Not UTF-8 and not JSON are ValueErrors; fields of the wrong type, TypeErrors.
        reason = getattr(err, "strerror", None) or " ".join(str(err).split()) or type(err).__name__
    raise CheckpointError(
        f"{path} is not a stage config aejax can read ({reason}); restore it, or overwrite the run",
        settings=("overwrite",),
    )


def _identity_key(name: str, record: dict[str, Any]) -> dict[str, Any]:
    """What must match to continue: the data, not where it was read from."""
    return {k: v for k, v in record.items() if not (name == TRAINED_ON and k == "source")}


def remove_stage_outputs(config: StageConfig, figure_files: tuple[str, ...] = ()) -> None:
    """Delete a stage's checkpoints and outputs, its `figure_files` included (what overwriting
    a run means), nothing else."""
    stage_dir = config.stage_dir
    if distributed.is_primary():
        for name in STAGE_FOLDERS:
            shutil.rmtree(stage_dir / name, ignore_errors=True)
        for name in (*STAGE_OUTPUTS, *figure_files):
            (stage_dir / name).unlink(missing_ok=True)
    distributed.barrier("aejax: earlier outputs removed")


def _require_free_space(stage_dir: Path, state, keep: int) -> None:
    """Refuse to start when the disk cannot hold the checkpoints this run will write."""
    state_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state) if hasattr(leaf, "nbytes"))
    needed = (keep + 1) * state_bytes + FREE_SPACE_MARGIN_BYTES
    free = shutil.disk_usage(stage_dir).free
    if free < needed:
        raise UserError(
            f"only {free / 2**20:.1f} MiB free on the disk of {stage_dir}, need about "
            f"{needed / 2**20:.1f} MiB for checkpoints; free space or choose another workdir",
            settings=("workdir",),
        )


def resume_key(config: StageConfig) -> dict[str, Any]:
    """The parts of a config that must match to continue a run (more epochs may be asked for)."""
    raw = config.to_dict()
    raw["train"] = {
        k: v for k, v in raw["train"].items() if k not in ("epochs", "keep_checkpoints")
    }
    raw.pop("workdir")
    # Where the data was read from may change (a moved folder, another source or mirror): what
    # it is, its content digest, is the run's identity (`TRAINED_ON`).
    raw["data"] = {k: v for k, v in raw["data"].items() if k not in DATA_LOCATION}
    return raw


def config_differences(saved: dict[str, Any], wanted: dict[str, Any], prefix="") -> list[str]:
    """Each setting whose value differs, as ``"train.lr 0.001 in the folder, 0.5 now"``."""
    differences = []
    for name in sorted(set(saved) | set(wanted)):
        old, new = saved.get(name), wanted.get(name)
        if isinstance(old, dict) and isinstance(new, dict):
            differences += config_differences(old, new, f"{prefix}{name}.")
        elif old != new and name == "sha256":
            differences.append(f"{prefix}{name} differs (other images or labels)")
        elif old != new:
            differences.append(f"{prefix}{name} {old!r} in the folder, {new!r} now")
    return differences


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def write_json(path: Path, value: dict[str, Any]) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file.

    In a multi-process run only the primary process writes (the others would write the same).
    """
    if not distributed.is_primary():
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    # Created new (a crash's leftover removed first), never through a symlink planted there.
    tmp.unlink(missing_ok=True)
    create_new(tmp, text.encode())
    os.replace(tmp, path)
