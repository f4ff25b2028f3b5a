"""Your own data from the command line: --dataset npz:PATH (Keras' mnist.npz layout) and
--dataset idx:DIR (any folder of the four IDX files), through the same checks as arrays."""

import json
import shutil

import numpy as np
import pytest

from aejax import DataConfig, UserError, load_dataset
from support import SUBSET_DIR, run_script_here, subset_data_config

SMALL = [
    "--hidden", "32", "--latent", "16", "--train-limit", "600", "--test-limit", "200",
    "--epochs", "1", "--no-progress", "--no-compile-cache",
]  # fmt: skip


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory):
    data = load_dataset(subset_data_config())
    path = tmp_path_factory.mktemp("npz") / "my_fashion.npz"
    square = {"x_train": data.train_images, "x_test": data.test_images}
    arrays = {k: v.reshape(-1, 28, 28) for k, v in square.items()}  # as Keras ships them
    np.savez(path, **arrays, y_train=data.train_labels, y_test=data.test_labels)
    return path


def test_the_pipeline_trains_on_an_npz_file_and_evaluates_it_again(npz_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default workdir is runs/<the file's stem>
    done = run_script_here("pipeline", "--dataset", f"npz:{npz_file}", *SMALL)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["dataset"], record["workdir"]) == ("my_fashion", "runs/my_fashion")
    assert record["finetune"]["num_train"] == 600 and record["finetune"]["test_accuracy"] > 0.2
    evaluated = run_script_here("evaluate", "runs/my_fashion/finetune")
    assert evaluated.returncode == 0, evaluated.stderr
    again = json.loads(evaluated.stdout)
    assert again["accuracy"] == record["finetune"]["test_accuracy"] and again["count"] == 200


def test_a_stage_trains_on_a_folder_of_idx_files(tmp_path):
    folder = shutil.copytree(SUBSET_DIR, tmp_path / "kmnist")
    work = str(tmp_path / "work")
    done = run_script_here("pretrain", "--dataset", f"idx:{folder}", *SMALL, "--workdir", work)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dataset"] == "kmnist"
    assert load_dataset(DataConfig(dataset=f"idx:{folder}")).name == "kmnist"


def test_an_npz_file_without_the_four_arrays_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "half.npz"
    np.savez(path, x_train=np.zeros((10, 784), np.uint8), y_train=np.zeros(10, np.int64))
    done = run_script_here("pretrain", "--dataset", f"npz:{path}", *SMALL, "--workdir", "w")
    assert done.returncode == 2
    assert done.stderr == (
        f"error: {path} has no x_test, y_test; an npz dataset holds x_train, y_train, x_test, "
        "y_test (flags: --dataset)\n"
    )


def test_a_file_dataset_goes_through_the_data_contract(tmp_path):
    path = tmp_path / "normalised.npz"
    images = np.zeros((10, 28, 28), np.float32) - 1.0  # [-1, 1]: the model's range, not data's
    labels = np.zeros(10, np.int64)
    np.savez(path, x_train=images, y_train=labels, x_test=images, y_test=labels)
    with pytest.raises(UserError, match=r"float train images must lie in \[0, 1\]"):
        load_dataset(DataConfig(dataset=f"npz:{path}"))


def test_an_unknown_dataset_names_the_forms_it_may_take():
    with pytest.raises(
        UserError, match="dataset must be mnist, fashion_mnist, npz:PATH or idx:DIR"
    ):
        DataConfig(dataset="kmnist")
