"""The autoencoder as a generator: latent mixing and noise, shifted copies, augmented training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.random import key

from aejax.config import AugmentConfig, ModelConfig, ObjectiveConfig
from aejax.data.datasets import normalize, subset, to_device
from aejax.engine.epochs import compile_stage
from aejax.engine.train import create_state
from aejax.errors import UserError
from aejax.model import generation, objectives
from aejax.model.models import make_autoencoder, make_classifier
from aejax.research import multi_seed

MODEL = ModelConfig(hidden=32, latent=16)
CLASSES = 10


@pytest.fixture(scope="module")
def generator_parts(small_fashion):
    """A (random, untrained) autoencoder, its generator fitted on 200 labelled examples, and a
    batch of 40 of them: generation's rules hold whatever the weights."""
    model = make_autoencoder(MODEL, small_fashion.input_dim)
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, small_fashion.input_dim)))
    images, labels = small_fashion.train_images[:200], small_fashion.train_labels[:200]
    generator = generation.fit_generator(model, params["params"], images, labels, CLASSES)
    return model, generator, images[:40], labels[:40]


@pytest.mark.parametrize("spec", ["latent-mix:2", "latent-noise:1", "shift:3"])
def test_generations_keep_labels_and_are_a_pure_function_of_the_key(generator_parts, spec):
    model, generator, images, labels = generator_parts
    augment = jax.jit(generation.make_augment(AugmentConfig(spec), model))
    weights = jnp.ones(len(labels))
    x, y, w = augment(images, labels, weights, jax.random.key(1), generator)
    copies = 1 + (1 if spec.startswith("shift") else int(spec[-1]))
    assert x.shape == (copies * len(labels), images.shape[1]) and x.dtype == jnp.uint8
    np.testing.assert_array_equal(y, np.tile(labels, copies))
    np.testing.assert_array_equal(w, np.ones(copies * len(labels)))
    np.testing.assert_array_equal(x[: len(labels)], images)  # the real batch comes first
    again = augment(images, labels, weights, jax.random.key(1), generator)[0]
    other = augment(images, labels, weights, jax.random.key(2), generator)[0]
    np.testing.assert_array_equal(x, again)
    assert not np.array_equal(x[len(labels) :], other[len(labels) :])


def test_padding_stays_weightless_and_partners_share_the_class():
    labels = jnp.array([0, 0, 1, 1, 2, 0])
    weights = jnp.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])  # the last slot is padding
    for seed in range(20):
        partners = np.asarray(generation.same_class_partners(labels, weights, jax.random.key(seed)))
        np.testing.assert_array_equal(labels[partners], labels)
        assert partners[0] == 1 and partners[1] == 0  # never the padding slot, never itself
        assert partners[4] == 4  # alone in its class: itself
    codes = jnp.arange(12.0).reshape(6, 2)
    mixed = generation.latent_mix(lambda p, z: z, None, codes, labels, weights, jax.random.key(0))
    between = (mixed[:2] - codes[:2]) / (codes[1::-1] - codes[:2])  # the mixing weight, per row
    assert np.all((between >= 0) & (between <= 1)) and np.allclose(between[:, 0], between[:, 1])


def test_shift_moves_pixels_by_at_most_p():
    side, pixels, count = 9, 2, 4096
    images = np.zeros((count, side * side), np.uint8)
    images[:, 4 * side + 4] = 255  # one lit pixel in the middle
    shifted = np.asarray(generation.shift(jnp.asarray(images), jax.random.key(0), pixels, side))
    rows, cols = np.divmod(shifted.argmax(axis=1), side)
    assert np.all(shifted.max(axis=1) == 255) and np.all(shifted.sum(axis=1) == 255)
    assert np.abs(rows - 4).max() == pixels and np.abs(cols - 4).max() == pixels
    assert len({(r, c) for r, c in zip(rows, cols, strict=True)}) > 10  # offsets vary
    # Each axis moves by -P..P, each amount equally often (1/5 here; the spread is ~0.006).
    for moved in (rows - 4, cols - 4):
        amounts, times = np.unique(moved, return_counts=True)
        np.testing.assert_array_equal(amounts, np.arange(-pixels, pixels + 1))
        np.testing.assert_allclose(times / count, 1 / (2 * pixels + 1), atol=0.03)


def test_latent_noise_spreads_each_code_by_its_class_spread_times_the_noise_scale():
    count, latent = 4096, 3
    labels = jnp.arange(count) % 2
    class_std = jnp.array([[1.0, 2.0, 0.0], [0.5, 0.0, 4.0]])
    codes = jnp.ones((count, latent))
    moved = generation.latent_noise(lambda p, z: z, None, codes, labels, class_std, key(7))
    for c in (0, 1):
        spread = np.asarray(jnp.std(moved[labels == c], axis=0))
        np.testing.assert_allclose(spread, generation.NOISE_SCALE * class_std[c], rtol=0.06)
        np.testing.assert_allclose(jnp.mean(moved[labels == c], axis=0), 1.0, atol=0.15)


def test_class_spread_is_fitted_per_class():
    codes = jnp.array([[0.0, 1.0], [2.0, 1.0], [5.0, 5.0], [5.0, 9.0], [3.0, -4.0]])
    labels = jnp.array([0, 0, 1, 1, 3])
    std = generation.class_latent_std(lambda p, x: x, None, codes, labels, 4)
    # Class 2 has no example, class 3 one: neither spreads.
    expected = [[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]]
    np.testing.assert_allclose(std, expected, atol=1e-6)


def test_a_class_of_equal_codes_has_spread_zero_not_nan():
    # E[z^2] - E[z]^2 of equal float32 codes rounds to a tiny negative number in about a third
    # of these columns: the spread must still be (nearly) zero, never the NaN of its root.
    codes = jnp.tile(jnp.linspace(0.1, 9.9, 64, dtype=jnp.float32), (7, 1))
    std = generation.class_latent_std(lambda p, x: x, None, codes, jnp.zeros(7, int), 1)
    assert np.isfinite(std).all()
    np.testing.assert_allclose(std, 0.0, atol=1e-2)  # the root of float32 rounding at ~10


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_the_generator_decodes_to_the_pixels_a_reconstruction_shows(small_fashion, loss):
    """Generated pixels are in [-1, 1] as the stage's reconstructions are, whether the decoder
    ends in tanh (MSE) or in logits (BCE)."""
    objective = ObjectiveConfig(loss=loss)
    model = make_autoencoder(
        MODEL, small_fashion.input_dim, logits=objectives.uses_logits(objective)
    )
    params = jax.jit(model.init)(key(0), jnp.zeros((1, small_fashion.input_dim)))["params"]
    images = small_fashion.test_images[:16]
    encode, decode = generation.coder(model)
    decoded = decode(params, encode(params, images))
    shown = objectives.reconstruct(model.apply, params, normalize(images), objective)
    np.testing.assert_allclose(decoded, shown, atol=1e-6)
    assert float(jnp.min(decoded)) >= -1.0 and float(jnp.max(decoded)) <= 1.0


def test_each_latent_kind_moves_the_code_only_as_it_says(generator_parts, small_fashion):
    """Mixing a code with itself, or adding noise of zero spread, gives the plain reconstruction;
    a same-class partner, or the class's real spread, gives another image."""
    model, generator, _, _ = generator_parts
    labels = small_fashion.train_labels[:200]
    firsts = np.array([np.flatnonzero(labels == c)[0] for c in range(CLASSES)])
    images, distinct = small_fashion.train_images[firsts], labels[firsts]  # one per class
    codec = generation.coder(model)
    encode, decode = codec
    plain = np.asarray(
        generation.to_uint8(decode(generator.params, encode(generator.params, images))), int
    )
    weights = jnp.ones(CLASSES)

    def made(kind, classes, gen):
        return np.asarray(
            generation.generate(kind, codec, images, classes, weights, key(3), gen), int
        )

    alone = made("latent-mix", distinct, generator)  # each example's only partner is itself
    assert np.abs(alone - plain).max() <= 1  # (1 - w) z + w z, rounded to uint8
    still = generator._replace(class_std=jnp.zeros_like(generator.class_std))
    one_class = jnp.zeros_like(distinct)
    np.testing.assert_array_equal(made("latent-noise", one_class, still), plain)
    assert np.abs(made("latent-mix", one_class, generator) - plain).max() > 2  # beyond rounding
    assert np.abs(made("latent-noise", distinct, generator) - plain).max() > 2  # beyond rounding


def test_stored_generations_are_the_pixels_normalize_reads_back():
    every = jnp.arange(256, dtype=jnp.uint8)
    np.testing.assert_array_equal(generation.to_uint8(normalize(every)), every)
    np.testing.assert_array_equal(generation.to_uint8(jnp.array([-3.0, 2.0])), [0, 255])


def test_examples_per_class_shows_each_class_source_and_its_generations(generator_parts):
    model, generator, images, labels = generator_parts
    sources, made = generation.examples_per_class(
        model, generator.params, images, labels, CLASSES, key(4), count=3
    )
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in range(CLASSES)]
    np.testing.assert_array_equal(sources, images[np.array(firsts)])
    assert set(made) == set(generation.LATENT_KINDS)
    for kind, generated in made.items():
        assert generated.shape == (CLASSES, 3, images.shape[1]) and generated.dtype == jnp.uint8
        assert not np.array_equal(generated[:, 0], generated[:, 1]), kind  # each its own key
    # By default six of each kind: the columns of the generation study's figure.
    _, made = generation.examples_per_class(
        model, generator.params, images, labels, CLASSES, key(4)
    )
    assert {kind: m.shape[1] for kind, m in made.items()} == dict.fromkeys(made, 6)


def test_augment_specs_are_parsed_and_bad_ones_refused():
    assert AugmentConfig("latent-mix:3").kind == "latent-mix"
    assert AugmentConfig("latent-mix:3").amount == 3
    assert AugmentConfig("latent-noise:0").kind == "none"  # R = 0 adds nothing
    assert generation.make_augment(AugmentConfig("shift:0")) is None
    assert generation.make_augment(AugmentConfig("shift:2")) is not None  # needs no autoencoder
    with pytest.raises(UserError, match="moves 28-pixel images out of the frame") as info:
        generation.make_augment(AugmentConfig("shift:28"))
    assert info.value.settings == ("augment",)
    assert generation.make_augment(AugmentConfig("latent-mix:28"), object()) is not None
    for latent in ("latent-mix:1", "latent-noise:2"):
        with pytest.raises(ValueError, match="needs the autoencoder"):
            generation.make_augment(AugmentConfig(latent))
    for bad in ("latent-mix", "mix:2", "shift:-1", "latent-noise:1.5"):
        with pytest.raises(UserError, match="augment must be") as info:
            AugmentConfig(bad)
        assert info.value.settings == ("augment",)


@pytest.fixture(scope="module")
def start(small_fashion):
    """A classifier's first state, and 500 train / 200 test real examples on the device."""
    model = make_classifier(MODEL)
    state = create_state(model, small_fashion.input_dim, optax.adam(1e-3), jax.random.key(0))
    return model, state, to_device(subset(small_fashion, 500, 200))


def _compiled(start, augment_spec, generator_parts=None):
    """The classifier's compiled epoch and test programs with `augment_spec`."""
    model, state, data = start
    augmentation = None
    config = AugmentConfig(augment_spec)
    if config.kind != "none":
        autoencoder, generator = generator_parts[:2]
        augmentation = (generation.make_augment(config, autoencoder), generator)
    metrics_fn = objectives.classification_metrics(model.apply)
    key = jax.random.key(1)
    return compile_stage(metrics_fn, state, data, 100, key, None, augmentation)


def test_augmentation_changes_training_not_evaluation(start, generator_parts):
    _, state, data = start
    programs = {
        name: _compiled(start, spec, generator_parts)
        for name, spec in {"plain": "none", "mixed": "latent-mix:1", "zero": "latent-mix:0"}.items()
    }
    tests = {n: p.evaluate(state.params, *data.test)["loss"] for n, p in programs.items()}
    assert tests["plain"] == tests["mixed"] == tests["zero"]
    trained = {}
    for name, compiled in programs.items():
        fresh = jax.tree.map(jnp.copy, state)  # each epoch donates its state
        trained[name] = jax.device_get(compiled.epoch(fresh, *data.train, jax.random.key(5))[0])
    same = jax.tree.map(np.array_equal, trained["plain"].params, trained["zero"].params)
    assert all(jax.tree.leaves(same))  # R = 0 is the plain run, bit for bit
    differs = jax.tree.map(np.array_equal, trained["plain"].params, trained["mixed"].params)
    assert not any(jax.tree.leaves(differs))


def test_the_augmented_epoch_compiles_once(start, generator_parts):
    _, state, data = start
    compiled = _compiled(start, "latent-noise:1", generator_parts)
    state = jax.tree.map(jnp.copy, state)
    compiles = []

    def count(event, seconds, **kwargs):
        if "compile" in event:
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        for epoch in range(3):  # the program a stage runs: train, then test
            key = jax.random.key(epoch)
            state, *metrics = compiled.epoch_and_test(state, *data.train, key, *data.test)
            jax.block_until_ready(metrics)
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert compiles == []


def test_the_generator_sees_only_the_labelled_subset(small_fashion, generator_parts):
    """Poisoning every unlabelled training image changes nothing a seed's run computes."""
    model, generator, _, _ = generator_parts
    indices = jnp.asarray(np.stack([np.arange(0, 200, 2), np.arange(1, 200, 2)]), jnp.int32)
    labelled = np.zeros(len(small_fashion.train_labels), bool)
    labelled[np.asarray(indices).ravel()] = True
    poisoned = small_fashion.train_images.copy()
    poisoned[~labelled] = 255 - poisoned[~labelled]

    labels = jnp.asarray(small_fashion.train_labels)

    def fit(images):
        return jax.vmap(
            lambda idx: generation.fit_generator(
                model, generator.params, images[idx], labels[idx], CLASSES
            )
        )(indices)

    clean, dirty = map(jnp.asarray, (small_fashion.train_images, poisoned))
    generators = fit(clean)
    np.testing.assert_array_equal(generators.class_std, fit(dirty).class_std)
    classifier = make_classifier(MODEL)
    keys = multi_seed.seed_keys([0, 1], 0)
    augment = generation.make_augment(AugmentConfig("latent-noise:1"), model)
    metrics_fn = objectives.classification_metrics(classifier.apply)
    states = multi_seed.init_states(classifier, clean.shape[1], optax.adam(1e-3), keys)
    compiled = multi_seed.compile_run(
        metrics_fn, states, (clean, labels), keys, indices, 50, 2, (augment, generators)
    )
    runs = [
        jax.device_get(compiled(jax.tree.map(jnp.copy, states), images, labels, keys, indices))
        for images in (clean, dirty)
    ]
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, *runs)))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    labels=st.lists(st.integers(0, 3), min_size=2, max_size=12),
    padding=st.integers(0, 11),
    seed=st.integers(0, 2**31),
)
def test_every_partner_is_a_real_example_of_the_same_class(labels, padding, seed):
    labels = np.array(labels)
    weights = (np.arange(len(labels)) < max(len(labels) - padding, 1)).astype(np.float32)
    partners = np.asarray(
        generation.same_class_partners(jnp.asarray(labels), jnp.asarray(weights), key(seed))
    )
    for i, j in enumerate(partners):
        others = [k for k in range(len(labels)) if k != i and labels[k] == labels[i] and weights[k]]
        assert (j in others) if others else j == i  # a real classmate, else itself
