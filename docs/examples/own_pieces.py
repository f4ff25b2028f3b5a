"""Your own pieces through aejax's stages: arrays of your own, a conv autoencoder and classifier,
AdamW with warmup and cosine decay, an L1 objective and a callback that stops early; then the
classifier's predictions.

    python docs/examples/own_pieces.py WORKDIR [IDX_DIR [TRAIN TEST EPOCHS]]

IDX_DIR defaults to Debian's Fashion-MNIST (/usr/share/datasets/fashion-mnist). Killed and run
again with the same arguments, it resumes where it stopped and ends with the very same parameters
(tests/guide_test.py does that with kill -9).
"""

import json
import sys
from pathlib import Path

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax

import aejax


class ConvEncoder(nn.Module):
    """28x28 images, given flat in [-1, 1] as every aejax model takes them -> a 16-number code."""

    @nn.compact
    def __call__(self, x):
        x = x.reshape(-1, 28, 28, 1)
        x = nn.relu(nn.Conv(8, (3, 3), strides=2)(x))  # 14 x 14 x 8
        x = nn.relu(nn.Conv(16, (3, 3), strides=2)(x))  # 7 x 7 x 16
        return nn.Dense(16)(x.reshape(x.shape[0], -1))


class ConvAutoencoder(nn.Module):
    """An autoencoder as aejax takes one: reconstructions in [-1, 1], `encode`, `encoder`."""

    def setup(self):
        self.encoder = ConvEncoder()
        self.expand = nn.Dense(7 * 7 * 16)
        self.up = nn.ConvTranspose(8, (3, 3), strides=(2, 2))
        self.out = nn.ConvTranspose(1, (3, 3), strides=(2, 2))

    def encode(self, x):
        return self.encoder(x)

    def __call__(self, x):
        h = nn.relu(self.expand(self.encoder(x))).reshape(-1, 7, 7, 16)
        return jnp.tanh(self.out(nn.relu(self.up(h)))).reshape(x.shape[0], -1)


class ConvClassifier(nn.Module):
    """A classifier as aejax takes one: logits, and an `encoder` the transplant fills."""

    def setup(self):
        self.encoder = ConvEncoder()
        self.head = nn.Dense(10)

    def __call__(self, x):
        return self.head(self.encoder(x))


def l1_objective(autoencoder):
    """A metrics function: the images arrive as uint8, one loss per example goes back."""

    def l1(params, images, labels, rng):
        x = aejax.normalize(images)
        reconstruction = autoencoder.apply({"params": params}, x)
        return {"loss": jnp.mean(jnp.abs(reconstruction - x), axis=-1)}

    return l1


def good_enough(row, state):
    """A callback: ends pretraining once test reconstructions are this close."""
    return row["test_loss"] < 0.05


def own_arrays(idx_dir: Path, train: int, test: int) -> aejax.Dataset:
    """Arrays of your own: here read from IDX files, as floats in [0, 1] shaped (N, 28, 28)."""

    def read(stem):  # the file raw or gzipped
        return aejax.read_idx(next(idx_dir.glob(f"{stem}*")))

    return aejax.Dataset.from_arrays(
        read("train-images-idx3-ubyte")[:train] / 255.0,
        read("train-labels-idx1-ubyte")[:train],
        read("t10k-images-idx3-ubyte")[:test] / 255.0,
        read("t10k-labels-idx1-ubyte")[:test],
        name="own-fashion",
    )


def main(workdir, idx_dir="/usr/share/datasets/fashion-mnist", train=60000, test=10000, epochs=10):
    data = own_arrays(Path(idx_dir), int(train), int(test))
    epochs, steps = int(epochs), int(epochs) * (int(train) // 100)
    schedule = optax.warmup_cosine_decay_schedule(0.0, 2e-3, steps // 10 + 1, steps)
    adamw = optax.inject_hyperparams(optax.adamw)(learning_rate=schedule, weight_decay=1e-4)
    autoencoder, classifier = ConvAutoencoder(), ConvClassifier()
    train_config = aejax.TrainConfig(epochs=epochs)
    pre = aejax.pretrain(
        aejax.pretrain_config(workdir=workdir, train=train_config),
        data,
        model=autoencoder,
        optimizer=adamw,
        objective=l1_objective(autoencoder),
        callbacks=[good_enough],
    )
    fine_config = aejax.finetune_config(workdir=workdir, train=train_config)
    fine = aejax.finetune(fine_config, data, model=classifier, optimizer=adamw)
    ids = aejax.predict(classifier, fine.state.params, data.test_images)
    return {
        "pretrain_test_l1": pre.metrics["test_loss"],
        "test_accuracy": fine.metrics["test_accuracy"],
        "predicted_accuracy": float(np.mean(ids == data.test_labels)),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
