import gc
import shutil
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aejax.config import ModelConfig
from aejax.engine.train import create_state
from aejax.errors import CheckpointError
from aejax.model.models import make_autoencoder, make_classifier
from aejax.run import checkpoint, saved_step
from aejax.run.state_digest import DamagedCheckpointError


def _equal(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


def _trained_state():
    model = make_autoencoder(ModelConfig(hidden=32, latent=16), 784)
    state = create_state(model, 784, optax.adam(1e-3), jax.random.key(0))
    grads = jax.tree.map(jnp.ones_like, state.params)
    return state.apply_gradients(grads=grads)  # non-trivial opt_state and step


def test_save_restore_round_trip_is_exact(tmp_path):
    state = _trained_state()
    with checkpoint.StageCheckpoints(tmp_path / "ck") as ckpt:
        ckpt.save(1, state, {"history": [{"epoch": 1, "train_loss": 0.5}]})
    fresh = create_state(
        make_autoencoder(ModelConfig(hidden=32, latent=16), 784),
        784,
        optax.adam(1e-3),
        jax.random.key(9),
    )
    with checkpoint.StageCheckpoints(tmp_path / "ck") as ckpt:
        assert ckpt.latest_epoch() == 1
        restored, meta = ckpt.restore(1, fresh)
    assert _equal(restored.params, state.params)
    assert _equal(restored.opt_state, state.opt_state)
    assert int(restored.step) == 1
    assert meta == {"history": [{"epoch": 1, "train_loss": 0.5}]}


def test_keeps_only_the_newest_checkpoints(tmp_path):
    state = _trained_state()
    with checkpoint.StageCheckpoints(tmp_path / "ck", keep=2) as ckpt:
        for epoch in (1, 2, 3):
            ckpt.save(epoch, state, {})
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["2", "3"]


def test_partial_restore_reads_only_the_encoder(tmp_path):
    state = _trained_state()
    with checkpoint.StageCheckpoints(tmp_path / "ck") as ckpt:
        ckpt.save(4, state, {})
    clf = make_classifier(ModelConfig(hidden=32, latent=16))
    target = clf.init(jax.random.key(1), jnp.zeros((1, 784)))["params"]
    restored = saved_step.restore_subtree(
        tmp_path / "ck", 4, {"params": {"encoder": target["encoder"]}}
    )
    assert set(restored) == {"params"} and set(restored["params"]) == {"encoder"}
    assert _equal(restored["params"]["encoder"], state.params["encoder"])
    shapes = saved_step.saved_param_shapes(tmp_path / "ck", 4)
    assert shapes["decoder"]["output"]["kernel"] == (32, 784)


def test_unfinished_save_is_not_a_checkpoint(tmp_path):
    state = _trained_state()
    with checkpoint.StageCheckpoints(tmp_path / "ck") as ckpt:
        ckpt.save(1, state, {})
    # What a kill during Orbax's save leaves behind: a temporary folder, never renamed.
    (tmp_path / "ck" / "2.orbax-checkpoint-tmp-123").mkdir()
    (tmp_path / "ck" / "3").write_text("not a step")
    assert checkpoint.latest_epoch(tmp_path / "ck") == 1
    assert checkpoint.partly_deleted(tmp_path / "ck") == []  # Orbax's to clean, not ours


def test_a_half_deleted_old_checkpoint_is_removed_when_the_folder_opens(tmp_path):
    state = _trained_state()
    with checkpoint.StageCheckpoints(tmp_path / "ck", keep=3) as ckpt:
        for epoch in (1, 2):
            ckpt.save(epoch, state, {"epoch": epoch})
    # What a kill during Orbax's deletion of an old step (max_to_keep) leaves: one item gone.
    shutil.rmtree(tmp_path / "ck" / "1" / "meta")
    assert checkpoint.partly_deleted(tmp_path / "ck") == [tmp_path / "ck" / "1"]
    with checkpoint.StageCheckpoints(tmp_path / "ck", keep=3) as ckpt:
        assert ckpt.latest_epoch() == 2
        ckpt.save(3, state, {"epoch": 3})
        restored, meta = ckpt.restore(2, state)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["2", "3"]
    assert meta == {"epoch": 2} and _equal(restored, state)


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    state = _trained_state()
    with checkpoint.StageCheckpoints(tmp_path / "ck") as ckpt:
        ckpt.save(1, state, {})
    for path in (tmp_path / "ck" / "1" / "state").rglob("*"):
        if path.is_file() and "manifest" in path.name:
            path.write_bytes(b"garbage")
    with checkpoint.StageCheckpoints(tmp_path / "ck") as ckpt:
        with pytest.raises(CheckpointError, match="cannot be restored"):
            ckpt.restore(1, state)


def test_reading_saved_shapes_logs_no_orbax_warning(tmp_path, caplog):
    # Orbax warns through absl that an item folder lacks _CHECKPOINT_METADATA whenever one item
    # is read alone; every library run that loads a stage read it (the CLI hid it).
    with checkpoint.StageCheckpoints(tmp_path / "ck") as ckpt:
        ckpt.save(1, _trained_state(), {})
    with caplog.at_level("INFO"):
        shapes = saved_step.saved_param_shapes(tmp_path / "ck", 1)
    assert shapes["encoder"]["hidden"]["kernel"] == (784, 32)
    assert not [r for r in caplog.records if "_CHECKPOINT_METADATA" in r.getMessage()]


def test_a_tie_in_score_keeps_the_earlier_epoch_as_the_best(tmp_path):
    # Early stopping counts patience from the first epoch that reached the best score.
    state = _trained_state()
    with checkpoint.StageCheckpoints(tmp_path / "ck", keep=1, track_best=True) as ckpt:
        for epoch, score in ((1, 0.5), (2, 0.7), (3, 0.7)):
            ckpt.save(epoch, state, {"epoch": epoch}, score=score)
        assert ckpt.best_epoch() == 2


@pytest.mark.parametrize("track_best", [False, True])
def test_what_a_killed_save_left_is_removed_by_the_next_save(tmp_path, track_best):
    state, score = _trained_state(), 0.5 if track_best else None
    with checkpoint.StageCheckpoints(tmp_path / "ck", track_best=track_best) as ckpt:
        ckpt.save(1, state, {}, score=score)
    leftover = tmp_path / "ck" / "2.orbax-checkpoint-tmp-123"
    leftover.mkdir()
    with checkpoint.StageCheckpoints(tmp_path / "ck", track_best=track_best) as ckpt:
        assert ckpt.latest_epoch() == 1
        ckpt.save(2, state, {}, score=score)  # Orbax's cleanup, started on opening, ends first
    assert not leftover.exists() and checkpoint.committed_epochs(tmp_path / "ck") == [2, 1]


def _save_two_epochs(directory, first, second):
    with checkpoint.StageCheckpoints(directory, keep=3) as ckpt:
        for epoch, state in ((1, first), (2, second)):
            ckpt.save(epoch, state, {"history": list(range(epoch))})


def _change_arrays(directory, epoch, like_epoch):
    """Epoch `epoch`'s arrays replaced by another epoch's, its metadata kept (with its digests):
    files Orbax reads without complaint that no longer hold what was saved."""
    shutil.rmtree(directory / str(epoch) / "state")
    shutil.copytree(directory / str(like_epoch) / "state", directory / str(epoch) / "state")


def test_each_changed_newest_checkpoint_is_set_aside_under_a_name_of_its_own(tmp_path, capsys):
    first = _trained_state()
    second = first.apply_gradients(grads=jax.tree.map(jnp.ones_like, first.params))
    ck = tmp_path / "ck"
    for aside in ("2.damaged", "2.damaged2"):
        _save_two_epochs(ck, first, second)
        _change_arrays(ck, 2, like_epoch=1)
        with checkpoint.StageCheckpoints(ck, keep=3) as ckpt:
            epoch, restored, meta = ckpt.restore_newest_good(2, second)
        assert epoch == 1 and _equal(restored.params, first.params) and meta == {"history": [0]}
        assert (ck / aside / "state").is_dir() and not (ck / "2").exists()
        assert capsys.readouterr().err.strip().endswith(f"set aside as {ck / aside}")
    assert sorted(p.name for p in ck.iterdir()) == ["1", "2.damaged", "2.damaged2"]


def test_a_step_orbax_cannot_read_leaves_nothing_to_say_later_in_the_run(
    tmp_path, capsys, monkeypatch
):
    """A cut data chunk fails Orbax's read part-way. Reads still pending then are coroutines that
    re-raise its error when the garbage collector closes them, whenever it next runs: about one
    try in three without `collect_a_failed_read`, so eight tries."""
    first = _trained_state()
    second = first.apply_gradients(grads=jax.tree.map(jnp.ones_like, first.params))
    _save_two_epochs(tmp_path / "saved", first, second)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    for attempt in range(8):
        ck = shutil.copytree(tmp_path / "saved", tmp_path / str(attempt))
        chunk = max((ck / "2/state/ocdbt.process_0/d").iterdir(), key=lambda p: p.stat().st_size)
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            with checkpoint.StageCheckpoints(ck, keep=3) as ckpt:
                epoch, restored, _ = ckpt.restore_newest_good(2, second)
            gc.collect()  # wherever in the run the collector would next run
        assert epoch == 1 and _equal(restored.params, first.params)
        assert "cannot be restored" in capsys.readouterr().err
        assert warned == []
    # TensorStore's threads calling back into the read's closed event loop report with no
    # object, on their own schedule; the commands silence those (`aejax.quiet`).
    assert [u.object for u in unraisable if u.object is not None] == []


def test_checkpoint_metadata_must_number_its_history_one_to_its_epoch(tmp_path):
    good = {"history": [{"epoch": 1}, {"epoch": 2}]}
    assert checkpoint.checked_meta(good, 2, tmp_path) == good
    with pytest.raises(CheckpointError, match=r"a history of epochs \[1, 2\] .* not epochs 1 to 3"):
        checkpoint.checked_meta(good, 3, tmp_path)


def test_committed_epochs_are_listed_newest_first(tmp_path):
    state = _trained_state()
    with checkpoint.StageCheckpoints(tmp_path / "ck", keep=3) as ckpt:
        for epoch in (1, 2, 3):
            ckpt.save(epoch, state, {})
    assert checkpoint.committed_epochs(tmp_path / "ck") == [3, 2, 1]
    assert checkpoint.latest_epoch(tmp_path / "ck") == 3


def test_an_error_is_quoted_by_its_first_line():
    assert (
        saved_step.first_line(ValueError("what went wrong\n  at some depth")) == "what went wrong"
    )
    assert saved_step.first_line(ValueError("")) == "ValueError"
    assert saved_step.first_line(ValueError("x" * 300)) == "x" * 200


def test_three_checkpoints_are_kept_by_default(tmp_path):
    state = _trained_state()
    with checkpoint.StageCheckpoints(tmp_path / "ck") as ckpt:
        for epoch in (1, 2, 3, 4):
            ckpt.save(epoch, state, {})
    assert checkpoint.committed_epochs(tmp_path / "ck") == [4, 3, 2]


def test_params_read_alone_are_checked_against_their_digest(tmp_path):
    first = _trained_state()
    second = first.apply_gradients(grads=jax.tree.map(jnp.ones_like, first.params))
    _save_two_epochs(tmp_path / "ck", first, second)
    target = {"params": jax.tree.map(jnp.zeros_like, first.params)}
    read = saved_step.restore_subtree(tmp_path / "ck", 2, target, verify_params=True)
    assert _equal(read["params"], second.params)
    _change_arrays(tmp_path / "ck", 2, like_epoch=1)
    with pytest.raises(DamagedCheckpointError, match="its params digest differs"):
        saved_step.restore_subtree(tmp_path / "ck", 2, target, verify_params=True)


def test_a_checkpoints_folder_that_cannot_be_made_is_one_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(CheckpointError, match="cannot open the checkpoints folder .*a-file/ck"):
        checkpoint.StageCheckpoints(tmp_path / "a-file" / "ck")


def test_the_shapes_of_a_step_that_is_not_there_are_one_error(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read checkpoint metadata in .*/7/state"):
        saved_step.saved_param_shapes(tmp_path, 7)


@pytest.mark.parametrize("vanishing, listed", [(2, True), (3, False)])
def test_listing_steps_tries_three_times_while_a_run_removes_them(
    tmp_path, monkeypatch, vanishing, listed
):
    with checkpoint.StageCheckpoints(tmp_path / "ck") as ckpt:
        ckpt.save(1, _trained_state(), {})
    steps_paths, failures = checkpoint.ocp.path.step.checkpoint_steps_paths, []

    def listing(directory):  # a step removed between listing a folder and reading its entry
        if len(failures) < vanishing:
            failures.append(1)
            raise FileNotFoundError("a step vanished")
        return steps_paths(directory)

    monkeypatch.setattr(checkpoint.ocp.path.step, "checkpoint_steps_paths", listing)
    if listed:
        assert checkpoint.committed_epochs(tmp_path / "ck") == [1]
    else:
        with pytest.raises(CheckpointError, match="kept changing while they were listed"):
            checkpoint.committed_epochs(tmp_path / "ck")


def test_a_listing_whose_every_step_was_just_removed_is_taken_again(tmp_path, monkeypatch):
    """A run keeping one checkpoint commits the next and removes the one listed meanwhile: the
    listing is taken again (the newer step), never read as "no checkpoint"."""
    first = _trained_state()
    _save_two_epochs(tmp_path / "ck", first, first)
    steps_paths, calls = checkpoint.ocp.path.step.checkpoint_steps_paths, []

    def listing(directory):
        calls.append(1)
        if len(calls) == 1:  # listed, then removed as a run does after committing the next
            shutil.rmtree(directory / "1" / "meta")
            return [directory / "1"]
        return steps_paths(directory)

    monkeypatch.setattr(checkpoint.ocp.path.step, "checkpoint_steps_paths", listing)
    assert checkpoint.committed_epochs(tmp_path / "ck") == [2] and len(calls) == 2
    shutil.rmtree(tmp_path / "ck" / "2" / "meta")  # nothing whole, nothing changing: none
    assert checkpoint.committed_epochs(tmp_path / "ck") == []


def test_metadata_whose_history_is_not_rows_is_one_error(tmp_path):
    for meta in ({"history": [1, 2]}, {"history": None}, {}):
        with pytest.raises(CheckpointError, match="has no history in its metadata"):
            checkpoint.checked_meta(meta, 2, tmp_path)


def test_a_step_that_is_not_there_cannot_be_read_in_part(tmp_path):
    target = {"params": jax.tree.map(jnp.zeros_like, _trained_state().params)}
    with pytest.raises(CheckpointError, match="checkpoint .*/9 cannot be read"):
        saved_step.restore_subtree(tmp_path, 9, target)


def test_a_partly_deleted_step_removed_meanwhile_by_another_process_is_no_error(
    tmp_path, monkeypatch
):
    gone = tmp_path / "ck" / "5"  # listed as partly deleted, then removed by someone else
    monkeypatch.setattr(checkpoint, "partly_deleted", lambda directory: [gone])
    with checkpoint.StageCheckpoints(tmp_path / "ck") as ckpt:
        assert ckpt.latest_epoch() is None


def test_with_best_tracking_only_the_best_is_kept_beside_the_newest(tmp_path):
    state = _trained_state()
    with checkpoint.StageCheckpoints(tmp_path / "ck", keep=1, track_best=True) as ckpt:
        for epoch, score in ((1, 0.5), (2, 0.7), (3, 0.6), (4, 0.4)):
            ckpt.save(epoch, state, {"epoch": epoch}, score=score)
        assert ckpt.best_epoch() == 2
    assert checkpoint.committed_epochs(tmp_path / "ck") == [4, 2]


def _saved_autoencoder(directory, epoch=1):
    state = _trained_state()
    with checkpoint.StageCheckpoints(directory) as ckpt:
        ckpt.save(epoch, state, {"history": [{"epoch": epoch}]})
    return state


def _autoencoder_params(hidden):
    model = make_autoencoder(ModelConfig(hidden=hidden, latent=16), 784)
    return create_state(model, 784, optax.adam(1e-3), jax.random.key(0)).params


def test_a_step_of_other_widths_is_named_with_three_of_its_shapes(tmp_path):
    _saved_autoencoder(tmp_path / "ck", epoch=2)
    assert saved_step.other_shapes(tmp_path / "ck", 2, _autoencoder_params(32)) is None
    wrong = saved_step.other_shapes(tmp_path / "ck", 2, _autoencoder_params(24))  # six differ
    assert isinstance(wrong, CheckpointError)
    message = str(wrong)
    assert (
        f"checkpoint {(tmp_path / 'ck' / '2').absolute()} holds arrays of other shapes" in message
    )
    assert message.count(", not ") == 3, message  # the first three, not all six
    assert "decoder/hidden/bias (32,), not (24,); decoder/hidden/kernel (16, 32)" in message


def test_a_subtree_read_into_other_shapes_is_refused(tmp_path):
    _saved_autoencoder(tmp_path / "ck")
    # NumPy leaves are read as NumPy arrays, in whatever shape they were stored: compared after.
    encoder = jax.tree.map(np.asarray, _autoencoder_params(24)["encoder"])
    refused = r"other shapes than the model's \(params/encoder/hidden/bias \(32,\), not \(24,\)"
    with pytest.raises(CheckpointError, match=refused):
        saved_step.restore_subtree(tmp_path / "ck", 1, {"params": {"encoder": encoder}})


def test_a_subtree_and_its_metadata_are_read_unchecked_unless_asked(tmp_path):
    state = _saved_autoencoder(tmp_path / "ck")
    target = {"params": {"encoder": _autoencoder_params(32)["encoder"]}}
    read, meta = saved_step.restore_subtree_and_meta(tmp_path / "ck", 1, target)
    assert _equal(read["params"]["encoder"], state.params["encoder"])
    assert meta["history"] == [{"epoch": 1}]
    # Part of the params cannot match the digest of all of them: asked to check, it refuses.
    with pytest.raises(DamagedCheckpointError):
        saved_step.restore_subtree_and_meta(tmp_path / "ck", 1, target, verify_params=True)
