"""The data contract (aejax.data.contract): bad input is one DataError at the door, and a stage
folder records the data it was trained on, so it never resumes or evaluates on other data."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import aejax
from aejax import DataError, Dataset, TrainConfig, UserError
from support import subset_data_config, tiny_config


def _arrays(data, n_train=1000, n_test=200):
    return (
        data.train_images[:n_train],
        data.train_labels[:n_train],
        data.test_images[:n_test],
        data.test_labels[:n_test],
    )


def test_images_in_every_accepted_layout_are_stored_alike(small_fashion):
    images, labels, test_images, test_labels = _arrays(small_fashion, 50, 20)
    plain = Dataset.from_arrays(images, labels, test_images, test_labels)
    square = images.reshape(-1, 28, 28)
    channels = images.reshape(-1, 28, 28, 1)
    unit = images.reshape(-1, 28, 28) / 255.0  # floats in [0, 1]
    for layout in (square, channels, unit, images.astype(np.int64)):
        same = Dataset.from_arrays(layout, labels.astype(np.int64), test_images, test_labels)
        np.testing.assert_array_equal(same.train_images, plain.train_images)
        assert same.train_images.dtype == np.uint8 and same.train_labels.dtype == np.int32
    assert (plain.name, plain.source, plain.loaded_with) == ("arrays", "arrays", None)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"train_images": lambda x: x / 127.5 - 1.0}, r"float train images must lie in \[0, 1\]"),
        ({"train_images": lambda x: x.astype(np.float32)}, r"must lie in \[0, 1\], got .* to 255"),
        ({"train_images": lambda x: np.full(x.shape, np.nan)}, "train images hold NaN"),
        ({"train_images": lambda x: x[:, :700]}, "train and test images differ in size: 700"),
        ({"train_images": lambda x: x[0]}, r"must be shaped \(N, H, W\)"),
        ({"train_images": lambda x: x.astype(bool)}, "must be uint8 or float, got bool"),
        ({"train_labels": lambda y: y[:10]}, "one label per image: 1000 labels, got"),
        ({"train_labels": lambda y: y.astype(np.float32)}, "must be integers .* got float32"),
        ({"train_labels": lambda y: y - 1}, r"train labels must lie in \[0, 10\), got .* -1"),
        ({"test_labels": lambda y: y + 10}, r"test labels must lie in \[0, 10\), got .* to 19"),
    ],
)
def test_each_bad_input_is_one_data_error(small_fashion, change, message):
    arrays = dict(zip(["train_images", "train_labels", "test_images", "test_labels"],
                      _arrays(small_fashion), strict=True))  # fmt: skip
    for name, edit in change.items():
        arrays[name] = edit(arrays[name])
    with pytest.raises(DataError, match=message) as info:
        Dataset.from_arrays(**arrays, num_classes=10)
    assert "\n" not in str(info.value)


def test_a_dataset_made_directly_must_already_hold_the_stored_layout(small_fashion):
    images, labels, test_images, test_labels = _arrays(small_fashion, 50, 20)
    with pytest.raises(DataError, match="build it with aejax.Dataset.from_arrays"):
        Dataset("mine", "arrays", images / 255.0, labels, test_images, test_labels)
    with pytest.raises(DataError, match=r"train labels must lie in \[0, number of classes\)"):
        Dataset("mine", "arrays", images, labels - 1, test_images, test_labels)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 1.5, "epochs must be a whole number, got 1.5"),
        ("batch_size", 64.0, "batch_size must be a whole number, got 64.0"),
        ("lr", "1e-3", "lr must be a number, got '1e-3'"),
    ],
)
def test_settings_of_the_wrong_type_are_refused_when_made(field, value, message):
    with pytest.raises(UserError, match=message) as info:
        TrainConfig(**{field: value})
    assert info.value.settings == (field,)


def test_a_library_run_records_the_data_it_loaded_and_evaluates_on_it(tmp_path):
    loaded_with = subset_data_config(train_limit=600, test_limit=200)
    data = aejax.load_dataset(loaded_with)
    config = tiny_config("pretrain", tmp_path, epochs=1).replace(data=aejax.DataConfig())
    aejax.pretrain(config, data, progress=False)  # the config names MNIST; the data is not
    saved = json.loads((tmp_path / "pretrain" / "config.json").read_text())
    assert aejax.DataConfig(**saved["data"]) == loaded_with
    assert saved["identity"]["trained_on"]["name"] == "fashion_mnist"
    assert saved["identity"]["trained_on"]["train"]["examples"] == 600
    evaluated = aejax.evaluate_stage(tmp_path / "pretrain")
    assert (evaluated["dataset"], evaluated["count"]) == ("fashion_mnist", 200.0)


def test_a_stage_trained_on_arrays_is_not_evaluated_on_other_data(tmp_path, small_fashion):
    data = Dataset.from_arrays(*_arrays(small_fashion), name="my-fashion")
    aejax.pretrain(tiny_config("pretrain", tmp_path, epochs=1), data, progress=False)
    with pytest.raises(DataError, match=r"trained on arrays passed in from Python \(my-fashion\)"):
        aejax.evaluate_stage(tmp_path / "pretrain")
    other = Dataset.from_arrays(*_arrays(small_fashion, 1000, 300))
    with pytest.raises(DataError, match="not the one .* was tested on"):
        aejax.evaluate_stage(tmp_path / "pretrain", other)
    assert aejax.evaluate_stage(tmp_path / "pretrain", data)["count"] == 200


def test_resuming_on_other_data_is_refused_naming_what_differs(tmp_path, small_fashion):
    first = Dataset.from_arrays(*_arrays(small_fashion, 1000), name="mine")
    aejax.pretrain(tiny_config("pretrain", tmp_path, epochs=1), first, progress=False)
    other = Dataset.from_arrays(*_arrays(small_fashion, 1500), name="mine")
    with pytest.raises(UserError, match="different config") as info:
        aejax.pretrain(tiny_config("pretrain", tmp_path, epochs=2), other, progress=False)
    assert "trained_on.train.examples 1000 in the folder, 1500 now" in str(info.value)
    assert "trained_on.train.sha256 differs (other images or labels)" in str(info.value)
    resumed = aejax.pretrain(tiny_config("pretrain", tmp_path, epochs=2), first, progress=False)
    assert resumed.metrics["epochs_run_now"] == 1


def test_evaluate_takes_images_as_a_dataset_does_and_refuses_normalised_ones(small_fashion):
    model = aejax.make_classifier(aejax.ModelConfig(hidden=32, latent=16))
    params = model.init(jax.random.key(0), jnp.zeros((1, 784)))["params"]
    images, labels = small_fashion.test_images[:100], small_fashion.test_labels[:100]
    as_uint8 = aejax.evaluate(model, params, images, labels)
    as_unit = aejax.evaluate(model, params, images.reshape(-1, 28, 28) / 255.0, labels)
    assert as_unit == as_uint8 and as_uint8["count"] == 100.0
    with pytest.raises(DataError, match="images already in \\[-1, 1\\] are for model.apply"):
        aejax.evaluate(model, params, aejax.normalize(images), labels)


def test_predict_and_encode_take_images_as_a_dataset_does(small_fashion):
    small = aejax.ModelConfig(hidden=32, latent=16)
    classifier, autoencoder = aejax.make_classifier(small), aejax.make_autoencoder(small, 784)
    clf_params = classifier.init(jax.random.key(0), jnp.zeros((1, 784)))["params"]
    ae_params = autoencoder.init(jax.random.key(1), jnp.zeros((1, 784)))["params"]
    images = small_fashion.test_images[:250]
    logits = classifier.apply({"params": clf_params}, aejax.normalize(images))
    ids = aejax.predict(classifier, clf_params, images.reshape(-1, 28, 28), batch_size=100)
    assert ids.dtype == np.int32 and ids.shape == (250,)  # 3 batches, the last one padded
    np.testing.assert_array_equal(ids, np.argmax(logits, axis=-1))
    codes = aejax.encode(autoencoder, ae_params, images / 255.0)
    expected = autoencoder.apply(
        {"params": ae_params}, aejax.normalize(images), method=autoencoder.encode
    )
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
    transplanted = aejax.transplant_encoder(clf_params, ae_params["encoder"])
    np.testing.assert_allclose(aejax.encode(classifier, transplanted, images), codes, atol=1e-6)
    with pytest.raises(DataError, match=r"float images must lie in \[0, 1\]"):
        aejax.predict(classifier, clf_params, aejax.normalize(images))
