import contextlib
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training.train_state import TrainState
from jax.experimental.compilation_cache import compilation_cache as jax_compilation_cache

from aejax.config import ModelConfig, ObjectiveConfig
from aejax.contracts import Augmentation
from aejax.data.datasets import DeviceData, Split, normalize
from aejax.engine import compile_cache
from aejax.engine.epochs import compile_eval, compile_stage, run_epoch, steady_state_seconds
from aejax.engine.train import (
    create_state,
    make_epoch_fn,
    make_eval_fn,
    masked_mean,
    train_step,
)
from aejax.errors import TrainingDivergedError
from aejax.evaluation import evaluate
from aejax.model.models import make_autoencoder, make_classifier
from aejax.model.objectives import classification_metrics, reconstruction_metrics

SMALL = ModelConfig(hidden=32, latent=16)
KEY0 = jax.random.key(0)


def _classifier_state(lr=1e-3, seed=0):
    model = make_classifier(SMALL)
    return model, create_state(model, 784, optax.adam(lr), jax.random.key(seed))


def _arrays(data, n):
    return jnp.asarray(data.train_images[:n]), jnp.asarray(data.train_labels[:n])


def _device_data(data, n_train, n_test):
    test = Split(jnp.asarray(data.test_images[:n_test]), jnp.asarray(data.test_labels[:n_test]))
    return DeviceData(train=Split(*_arrays(data, n_train)), test=test)


def test_overfitting_one_batch_drives_the_loss_down(small_fashion):
    model, state = _classifier_state(lr=3e-3)
    images, labels = _arrays(small_fashion, 100)
    epoch = jax.jit(make_epoch_fn(classification_metrics(model.apply), 100, 100))
    losses = []
    for e in range(60):
        state, metrics = epoch(state, images, labels, jax.random.key(e))
        losses.append(float(metrics["loss"][0]))
    assert losses[-1] < 0.1 * losses[0]
    assert float(metrics["accuracy"][0]) == 1.0


def test_autoencoder_epoch_reduces_reconstruction_error(small_fashion):
    model = make_autoencoder(SMALL, 784)
    state = create_state(model, 784, optax.adam(1e-3), jax.random.key(0))
    images, labels = _arrays(small_fashion, 2000)
    metrics_fn = reconstruction_metrics(model.apply, ObjectiveConfig())
    before = evaluate(model, state.params, images, labels)["loss"]
    epoch = jax.jit(make_epoch_fn(metrics_fn, 2000, 100))
    for e in range(3):
        state, _ = epoch(state, images, labels, jax.random.key(e))
    assert evaluate(model, state.params, images, labels)["loss"] < 0.6 * before


def test_epoch_covers_every_example_once_with_a_partial_last_batch():
    # Each example's "id" is its label: the per-step means, re-weighted by batch occupancy, must
    # sum to the sum of all labels. The loss w * id makes each step's gradient that step's mean
    # id over its real examples, so after SGD at rate 1 the weight is minus the sum of the means:
    # padding would pull the partial batch's mean (and so the weight) elsewhere.
    def metrics(params, images, labels, rng):
        ids = labels.astype(jnp.float32)
        return {"loss": params["w"] * ids, "id": ids}

    state = TrainState.create(apply_fn=None, params={"w": jnp.zeros(())}, tx=optax.sgd(1.0))
    labels = jnp.arange(250)
    images = jnp.zeros((250, 1), jnp.uint8)
    epoch = jax.jit(make_epoch_fn(metrics, 250, 100))
    state, out = epoch(state, images, labels, jax.random.key(0))
    sizes = np.array([100, 100, 50])
    assert out["id"].shape == (3,)
    np.testing.assert_allclose(np.sum(np.asarray(out["id"]) * sizes), labels.sum())
    np.testing.assert_allclose(state.params["w"], -np.sum(np.asarray(out["id"])), rtol=1e-6)


def test_eval_counts_each_of_1001_examples_exactly_once(small_fashion):
    model, state = _classifier_state()
    images, labels = _arrays(small_fashion, 1001)
    result = jax.jit(make_eval_fn(classification_metrics(model.apply), 1001, 100))(
        state.params, images, labels
    )
    logits = model.apply({"params": state.params}, normalize(images))
    expected_loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    expected_acc = (jnp.argmax(logits, -1) == labels).mean()
    assert float(result["count"]) == 1001
    np.testing.assert_allclose(result["loss"], expected_loss, rtol=1e-5)
    np.testing.assert_allclose(result["accuracy"], expected_acc, rtol=1e-6)


@pytest.mark.parametrize(
    "make", [make_classifier, lambda c: make_autoencoder(c, 784, variational=True)]
)
def test_init_compiled_for_one_run_gives_the_default_compilers_bits(make):
    model, tx = make(SMALL), optax.adam(1e-3)

    def init(key):
        return model.init(key, jnp.zeros((1, 784), jnp.float32))["params"]

    fast = create_state(model, 784, tx, jax.random.key(3)).params
    default = jax.jit(init)(jax.random.key(3))
    chex.assert_trees_all_equal(fast, default)  # exact, not close


def test_training_compiles_once_across_epochs(small_fashion):
    model, state = _classifier_state()
    images, labels = _arrays(small_fashion, 500)
    metrics_fn = chex.assert_max_traces(classification_metrics(model.apply), n=1)
    epoch = jax.jit(make_epoch_fn(metrics_fn, 500, 100), donate_argnums=0)
    for e in range(4):  # epoch 1 traces; epochs 2-4 must reuse it
        state, _ = epoch(state, images, labels, jax.random.fold_in(jax.random.key(0), e))
    assert epoch._cache_size() == 1


def test_compiled_stage_traces_nothing_after_compilation(small_fashion):
    model, state = _classifier_state()
    data = _device_data(small_fashion, 500, 200)
    traces = []

    def counting(params, images, labels, rng):
        traces.append(1)
        return classification_metrics(model.apply)(params, images, labels, rng)

    compiled = compile_stage(counting, state, data, 100, jax.random.key(0))
    after_compile = len(traces)
    for e in range(3):
        state, record, _ = run_epoch(compiled, state, data, jax.random.key(e), e + 1)
    assert len(traces) == after_compile
    assert 0 <= record.test["accuracy"] <= 1 and record.test["count"] == 200


def test_nan_loss_stops_with_the_epoch_named(small_fashion):
    model, state = _classifier_state(lr=1e30)  # diverges at once
    data = _device_data(small_fashion, 300, 100)
    compiled = compile_stage(
        classification_metrics(model.apply), state, data, 100, jax.random.key(0)
    )
    with pytest.raises(TrainingDivergedError, match="epoch 7") as info:
        for _ in range(3):
            state, _, _ = run_epoch(compiled, state, data, jax.random.key(0), 7)
    assert info.value.settings == ("lr",)


@pytest.mark.parametrize("train_examples", [300, 100])  # three steps, and only one
def test_a_loss_nan_before_any_update_does_not_blame_the_learning_rate(
    small_fashion, train_examples
):
    model, state = _classifier_state(lr=1e-3)
    state = state.replace(params=jax.tree.map(lambda p: p * jnp.nan, state.params))
    data = _device_data(small_fashion, train_examples, 100)
    compiled = compile_stage(
        classification_metrics(model.apply), state, data, 100, jax.random.key(0)
    )
    with pytest.raises(TrainingDivergedError, match="epoch 1 before the first update") as info:
        run_epoch(compiled, state, data, jax.random.key(0), 1)
    assert info.value.settings == ()


def test_compiled_eval_matches_the_eval_function(small_fashion):
    model, state = _classifier_state()
    split = Split(*_arrays(small_fashion, 250))
    metrics_fn = classification_metrics(model.apply)
    compiled = compile_eval(metrics_fn, state.params, split, 100)
    expected = jax.jit(make_eval_fn(metrics_fn, 250, 100))(state.params, *split)
    got = compiled(state.params, *split)
    assert float(got["count"]) == 250
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6)


def test_masked_mean_ignores_padding():
    values, mask = jnp.array([1.0, 3.0, 100.0]), jnp.array([1.0, 1.0, 0.0])
    assert float(masked_mean(values, mask)) == 2.0
    assert float(masked_mean(values, jnp.zeros(3))) == 0.0  # an all-padding batch adds nothing
    assert float(masked_mean(values, jnp.array([0.0, 1.0, 0.0]))) == 3.0  # one real example


def test_steady_state_leaves_out_the_first_epoch():
    assert steady_state_seconds([9.0, 1.0, 3.0]) == 2.0
    assert steady_state_seconds([9.0, 1.0, 2.0, 30.0]) == 2.0
    assert steady_state_seconds([5.0]) == 5.0
    assert steady_state_seconds([]) is None


def _sgd_classifier_state():
    # Plain SGD: Adam's first step is about lr * sign(gradient), which turns a rounding difference
    # in a near-zero gradient into a step of 2 * lr; SGD keeps rounding differences small.
    model = make_classifier(SMALL)
    return model, create_state(model, 784, optax.sgd(0.1), jax.random.key(0))


def test_the_epoch_scans_train_step(small_fashion):
    model, state = _sgd_classifier_state()
    images, labels = _arrays(small_fashion, 100)
    metrics_fn = classification_metrics(model.apply)
    epoch = jax.jit(make_epoch_fn(metrics_fn, 100, 100))  # one step over all 100, shuffled
    by_epoch, epoch_metrics = epoch(state, images, labels, jax.random.key(1))
    step = jax.jit(train_step, static_argnums=3)
    batch = (images, labels, jnp.ones(100))
    by_step, step_metrics = step(state, batch, jax.random.key(2), metrics_fn)
    chex.assert_trees_all_close(by_step.params, by_epoch.params, rtol=1e-5, atol=1e-6)
    assert int(by_step.step) == int(by_epoch.step) == 1
    np.testing.assert_allclose(step_metrics["loss"], epoch_metrics["loss"][0], rtol=1e-5)


def test_train_step_ignores_examples_of_weight_zero(small_fashion):
    model, state = _sgd_classifier_state()
    images, labels = _arrays(small_fashion, 100)
    metrics_fn = classification_metrics(model.apply)
    step = jax.jit(train_step, static_argnums=3)
    weights = jnp.arange(100) < 70
    padded, padded_metrics = step(state, (images, labels, weights), jax.random.key(0), metrics_fn)
    real = (images[:70], labels[:70], jnp.ones(70))
    plain, plain_metrics = step(state, real, jax.random.key(0), metrics_fn)
    chex.assert_trees_all_close(padded.params, plain.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(padded_metrics["loss"], plain_metrics["loss"], rtol=1e-6)
    assert not np.allclose(padded.params["head"]["kernel"], state.params["head"]["kernel"])


def test_the_batch_order_follows_the_epoch_key_and_only_it():
    # A "loss" that is each example's own index: the per-step means spell out the batch order.
    def order_of(params, images, labels, rng):
        return {"loss": labels.astype(jnp.float32) + 0.0 * jnp.sum(params["w"])}

    state = TrainState.create(apply_fn=None, params={"w": jnp.zeros(1)}, tx=optax.sgd(0.0))
    epoch = jax.jit(make_epoch_fn(order_of, 50, 10))
    images, ids = jnp.zeros((50, 4), jnp.uint8), jnp.arange(50)

    def order(key):
        return np.asarray(epoch(state, images, ids, key)[1]["loss"])

    first, again = order(jax.random.key(1)), order(jax.random.key(1))
    np.testing.assert_array_equal(first, again)  # a resumed epoch sees the same batches
    assert not np.array_equal(first, order(jax.random.key(2)))  # another epoch or seed: others


def test_an_augmented_stage_trains_on_its_generated_examples_and_tests_without_them():
    # An augmentation that appends each batch's first example with its generator's pixel value:
    # the mean "pixel" of a step shows the generated example; the test metrics never do.
    def append_generated(images, labels, weights, key, generator):
        made = jnp.full((1, images.shape[1]), generator, images.dtype)
        return (
            jnp.concatenate([images, made]),
            jnp.concatenate([labels, labels[:1]]),
            jnp.concatenate([weights, jnp.ones(1, weights.dtype)]),
        )

    def pixel_mean(params, images, labels, rng):
        return {"loss": jnp.mean(images.astype(jnp.float32), axis=1) + 0.0 * params["w"]}

    state = TrainState.create(apply_fn=None, params={"w": jnp.zeros(())}, tx=optax.sgd(0.0))
    zeros = Split(jnp.zeros((20, 4), jnp.uint8), jnp.arange(20))
    data = DeviceData(train=zeros, test=zeros)
    augmentation = Augmentation(append_generated, jnp.uint8(110))
    compiled = compile_stage(pixel_mean, state, data, 10, jax.random.key(0), None, augmentation)
    _, record, losses = run_epoch(compiled, state, data, jax.random.key(1), 1)
    np.testing.assert_allclose(losses, [110 / 11, 110 / 11], rtol=1e-6)
    assert record.test["loss"] == 0.0  # tests see the real examples alone


def test_a_test_metric_that_is_nan_while_training_is_finite_stops_the_run(small_fashion):
    model, state = _classifier_state()
    data = _device_data(small_fashion, 300, 100)
    classify = classification_metrics(model.apply)

    def nan_when_testing(params, images, labels, rng):  # evaluation passes no rng
        values = classify(params, images, labels, rng)
        return values if rng is not None else {**values, "loss": values["loss"] * jnp.nan}

    compiled = compile_stage(nan_when_testing, state, data, 100, jax.random.key(0))
    with pytest.raises(TrainingDivergedError, match="became NaN/Inf in epoch 2"):
        run_epoch(compiled, state, data, jax.random.key(0), 2)


def test_an_epoch_record_times_its_program_and_reports_no_count(small_fashion):
    model, state = _classifier_state()
    data = _device_data(small_fashion, 300, 100)
    started = time.perf_counter()
    compiled = compile_stage(classification_metrics(model.apply), state, data, 100, key := KEY0)
    start = time.perf_counter()
    _, record, _ = run_epoch(compiled, state, data, key, 1)
    wall = time.perf_counter() - start
    assert 0 < compiled.compile_s < start - started
    # Training and the test are one program: `seconds` times both; validation adds eval_s.
    assert 0 < record.seconds <= wall and record.eval_seconds == 0
    row = record.as_dict()
    assert set(row) == {
        "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds", "eval_s"
    }  # fmt: skip
    assert row["test_accuracy"] == record.test["accuracy"] and row["eval_s"] == record.eval_seconds


def test_the_epoch_program_computes_what_training_then_testing_apart_do(small_fashion):
    """One program that trains and then tests gives the very bits of the two programs run one
    after the other (the test on the params the epoch hands back)."""
    model, state = _classifier_state()
    data = _device_data(small_fashion, 300, 100)
    compiled = compile_stage(classification_metrics(model.apply), state, data, 100, KEY0)
    key = jax.random.key(3)
    fused = jax.device_get(compiled.epoch_and_test(_copy(state), *data.train, key, *data.test))
    trained, step_metrics = compiled.epoch(_copy(state), *data.train, key)
    apart = jax.device_get((trained, step_metrics, compiled.evaluate(trained.params, *data.test)))
    jax.tree.map(np.testing.assert_array_equal, fused, apart)


def test_each_epoch_program_takes_its_state_and_leaves_the_data(small_fashion):
    """The state is donated (its buffers reused for the next one), the data never: it serves
    every epoch."""
    model, state = _classifier_state()
    data = _device_data(small_fashion, 200, 100)
    compiled = compile_stage(classification_metrics(model.apply), state, data, 100, KEY0)
    for name, extra in (("epoch_and_test", data.test), ("epoch", ())):
        given = _copy(state)
        getattr(compiled, name)(given, *data.train, jax.random.key(1), *extra)
        assert all(leaf.is_deleted() for leaf in jax.tree.leaves(given)), name
        assert not any(a.is_deleted() for a in (*data.train, *data.test)), name


def test_programs_without_a_recipe_are_found_by_their_trace_alone(
    small_fashion, tmp_path, monkeypatch
):
    """Two objectives with the same shapes and no recipe (a caller's own code): each runs its
    own program, never the other's kept one."""
    monkeypatch.setattr(compile_cache, "_kept_dir", tmp_path)
    model, state = _classifier_state()
    data = _device_data(small_fashion, 230, 70)
    classify = classification_metrics(model.apply)

    def doubled(params, images, labels, rng):
        values = classify(params, images, labels, rng)
        return {**values, "loss": 2.0 * values["loss"]}

    losses = []
    with _without_jax_cache():  # a program JAX's own cache holds is not kept; these must be
        for metrics_fn in (classify, doubled):
            compiled = compile_stage(metrics_fn, state, data, 100, KEY0)
            _, _, test = compiled.epoch_and_test(_copy(state), *data.train, KEY0, *data.test)
            losses.append(float(test["loss"]))
    assert list(tmp_path.glob("*.executable")) and not list(tmp_path.glob("*.recipe"))
    assert losses[1] == pytest.approx(2 * losses[0], rel=1e-6)


@contextlib.contextmanager
def _without_jax_cache():
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    jax_compilation_cache.reset_cache()  # JAX decides once whether it uses its cache
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
        jax_compilation_cache.reset_cache()


def _copy(state):
    return jax.tree.map(jnp.copy, state)  # the epoch programs take their state (donated)


def test_a_stage_compiled_again_with_programs_kept_loads_them_instead(
    small_fashion, tmp_path, monkeypatch
):
    model, state = _classifier_state()
    # Sizes no other test compiles: a program JAX's own cache (which earlier tests in this process
    # may have turned on) already holds is not kept, by design.
    data = _device_data(small_fashion, 310, 90)
    monkeypatch.setattr(compile_cache, "_kept_dir", tmp_path)  # the epoch and test programs
    metrics_fn = classification_metrics(model.apply)
    with compile_cache.count_compiles() as first:
        compile_stage(metrics_fn, state, data, 100, KEY0)  # one program: train, then test
    with compile_cache.count_compiles() as again:
        compiled = compile_stage(metrics_fn, state, data, 100, KEY0)
    assert first.compiled == 1 and len(list(tmp_path.glob("*.executable"))) == 1
    assert again.requests == 1 and again.compiled == 0
    with compile_cache.count_compiles() as later:  # training or a test alone: when asked for
        assert callable(compiled.evaluate) and callable(compiled.epoch)
    assert later.compiled == 2 and len(list(tmp_path.glob("*.executable"))) == 3
