"""Orbax checkpoints: one per epoch (full TrainState + JSON metadata) and partial encoder restore.

Each checkpoint step is the number of completed epochs. Orbax writes into a temporary folder and
renames it on commit, so a run killed mid-save never leaves a checkpoint that looks complete. Old
checkpoints, though, are deleted in place: a run killed mid-delete leaves a step folder without
one of its items, which the next run removes before it opens the folder.

Each step's metadata records a digest of the state it saved (and of its params alone), and a
restore checks it: a checkpoint whose bytes changed on disk is never trained on. A resume then
sets that step aside as ``<epoch>.damaged`` (saying so) and resumes from the newest good one.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from aejax.engine import distributed
from aejax.errors import CheckpointError
from aejax.run.saved_step import (
    META_ITEM,
    STATE_ITEM,
    UnreadableCheckpointError,
    abstract_like,
    collect_a_failed_read,
    first_line,
    other_shapes,
)
from aejax.run.state_digest import DIGESTS, DamagedCheckpointError, digests, verify

DAMAGED = ".damaged"  # the suffix of a step set aside because it cannot be restored whole


def _rank(metrics: dict[str, Any]) -> tuple[float, int]:
    """Higher score is better; on a tie the earlier epoch wins (it is what "improved" means)."""
    return metrics["score"], -metrics["epoch"]


class StageCheckpoints:
    """The checkpoints of one training stage, in ``directory/<epoch>/{state,meta}``.

    With ``track_best=True`` each save carries a score and, beside the newest `keep`, Orbax also
    keeps the best-scoring checkpoint (`BestN`), so early stopping can restore it after the run.
    """

    def __init__(self, directory: str | Path, keep: int = 3, track_best: bool = False):
        self.directory = Path(directory).absolute()
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(
                f"cannot open the checkpoints folder {self.directory} (a file is there); remove "
                "it, or use another workdir",
                settings=("workdir",),
            )
        remove_partly_deleted(self.directory)
        if track_best:
            policy = ocp.checkpoint_managers.AnyPreservationPolicy(
                [
                    ocp.checkpoint_managers.LatestN(n=keep),
                    ocp.checkpoint_managers.BestN(get_metric_fn=_rank, n=1),
                ]
            )
            options = ocp.CheckpointManagerOptions(
                create=True,
                best_fn=_rank,
                best_mode="max",
                preservation_policy=policy,
                cleanup_tmp_directories=True,
            )
        else:
            # Leftovers of a save that was killed are removed when the manager opens.
            options = ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, cleanup_tmp_directories=True
            )
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        except Exception as err:  # noqa: BLE001 - e.g. a file where the folder belongs
            raise CheckpointError(
                f"cannot open the checkpoints folder {self.directory} ({first_line(err)}); "
                "remove what is there, or use another workdir",
                settings=("workdir",),
            ) from err

    def __enter__(self) -> StageCheckpoints:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait_until_saved(self) -> None:
        """Block until the last (asynchronous) save has been committed."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def latest_epoch(self) -> int | None:
        """The newest fully committed epoch, or None when there is none."""
        return self._manager.latest_step()

    def best_epoch(self) -> int | None:
        """The epoch with the best score (with ``track_best``), else the newest one."""
        self._manager.wait_until_finished()  # saves are asynchronous
        return self._manager.best_step()

    def save(
        self, epoch: int, state: Any, meta: dict[str, Any], score: float | None = None
    ) -> None:
        """Save the train state and JSON metadata after `epoch` epochs (asynchronously), the
        state's digests recorded in the metadata."""
        meta = {**meta, DIGESTS: digests(state)}
        args = ocp.args.Composite(
            **{STATE_ITEM: ocp.args.StandardSave(state), META_ITEM: ocp.args.JsonSave(meta)}
        )
        metrics = None if score is None else {"score": float(score), "epoch": epoch}
        self._manager.save(epoch, args=args, metrics=metrics)

    def restore(self, epoch: int, state_like: Any) -> tuple[Any, dict[str, Any]]:
        """Restore the state (structured like `state_like`) and metadata saved after `epoch`."""
        args = ocp.args.Composite(
            **{
                STATE_ITEM: ocp.args.StandardRestore(abstract_like(state_like)),
                META_ITEM: ocp.args.JsonRestore(),
            }
        )
        try:
            restored = self._manager.restore(epoch, args=args)
        except Exception as err:  # noqa: BLE001 - Orbax raises many types for bad checkpoints
            raise UnreadableCheckpointError(
                f"checkpoint {self.directory / str(epoch)} cannot be restored ({first_line(err)})",
                settings=("workdir",),
            ) from err
        state, meta = restored[STATE_ITEM], restored[META_ITEM]
        verify(state, meta, "state", self.directory / str(epoch))
        return state, {k: v for k, v in meta.items() if k != DIGESTS}

    def restore_newest_good(self, newest: int, state_like: Any) -> tuple[int, Any, dict[str, Any]]:
        """The newest checkpoint up to `newest` that restores whole, as ``(epoch, state, meta)``.
        Each newer one that Orbax cannot read, or that fails its digest, is set aside as
        ``<epoch>.damaged`` with one warning line; none good is a `CheckpointError`. One that
        holds arrays of other shapes was trained with other settings: refused at once."""
        for epoch in sorted((s for s in self._manager.all_steps() if s <= newest), reverse=True):
            try:
                return epoch, *self.restore(epoch, state_like)
            except (DamagedCheckpointError, UnreadableCheckpointError) as err:
                if isinstance(err, UnreadableCheckpointError):
                    self._refuse_other_settings(epoch, state_like)
                if distributed.is_multiprocess():
                    raise  # the processes would have to agree on what to set aside
                aside = self._set_aside(epoch)
                print(f"warning: {err}; set aside as {aside}", file=sys.stderr)
            collect_a_failed_read()  # once `err` and its frames are let go, at the except's end
        raise CheckpointError(
            f"no checkpoint in {self.directory} can be restored whole (each that failed is set "
            f"aside as <epoch>{DAMAGED}); start the stage over with --overwrite",
            settings=("overwrite",),
        )

    def _refuse_other_settings(self, epoch: int, state_like: Any) -> None:
        """Raise when step `epoch` holds params of other shapes than `state_like`'s: not damage
        to set aside, but a run of other settings. Unreadable metadata is damage: no error."""
        with contextlib.suppress(UnreadableCheckpointError):
            if wrong := other_shapes(self.directory, epoch, state_like.params):
                raise wrong

    def _set_aside(self, epoch: int) -> Path:
        """Move step `epoch` out of Orbax's sight, keeping its files: a damaged step."""
        self._manager.wait_until_finished()
        aside = self.directory / f"{epoch}{DAMAGED}"
        count = 1
        while aside.exists():
            count += 1
            aside = self.directory / f"{epoch}{DAMAGED}{count}"
        (self.directory / str(epoch)).rename(aside)
        self._manager.reload()
        return aside


def checked_meta(meta: Any, epoch: int, directory: Path) -> dict[str, Any]:
    """`meta` as saved after `epoch`: a history of one row per epoch, numbered 1..epoch. Anything
    else would resume on a wrong count of epochs, so it is refused in one line."""
    history = meta.get("history") if isinstance(meta, dict) else None
    rows_ok = isinstance(history, list) and all(isinstance(row, dict) for row in history)
    numbers = [row.get("epoch") for row in history] if rows_ok else None
    if numbers != list(range(1, epoch + 1)):
        found = "no history" if not rows_ok else f"a history of epochs {numbers}"
        raise CheckpointError(
            f"checkpoint {directory / str(epoch)} has {found} in its metadata, not epochs 1 to "
            f"{epoch}; remove that checkpoint folder or use another workdir",
            settings=("workdir",),
        )
    return meta


def partly_deleted(directory: Path) -> list[Path]:
    """Step folders missing an item: what a kill during Orbax's deletion of an old one leaves."""
    if not directory.is_dir():
        return []
    steps = [p for p in directory.iterdir() if p.is_dir() and p.name.isdigit()]
    return [p for p in steps if not _holds_every_item(p)]


def _holds_every_item(step: Path) -> bool:
    return all((step / item).is_dir() for item in (STATE_ITEM, META_ITEM))


def remove_partly_deleted(directory: Path) -> None:
    """Finish the deletions a killed run left half done (process 0; the others wait)."""
    if distributed.is_primary():
        for step in partly_deleted(directory):
            shutil.rmtree(step, ignore_errors=True)
    distributed.barrier("aejax: partly deleted checkpoints removed")


def committed_epochs(directory: str | Path) -> list[int]:
    """The committed, complete epochs in `directory`, newest first."""
    directory = Path(directory).absolute()
    if not directory.is_dir():
        return []
    listed = None
    for _ in range(3):  # a run still writing there may remove steps while they are listed
        with contextlib.suppress(FileNotFoundError):
            steps = ocp.path.step.checkpoint_steps_paths(directory)
            # Each step is checked after the listing that found it: one missing an item is being
            # removed, or a kill left it partly deleted (the stage removes it before it resumes).
            whole = [int(p.name) for p in steps if p.name.isdigit() and _holds_every_item(p)]
            names = {p.name for p in steps}
            if whole or not steps or names == listed:  # else all it listed were just removed
                return sorted(whole, reverse=True)
            listed = names
    raise CheckpointError(f"the checkpoints in {directory} kept changing while they were listed")


def latest_epoch(directory: str | Path) -> int | None:
    """The newest committed epoch in `directory`, or None if it holds no checkpoint."""
    return next(iter(committed_epochs(directory)), None)
