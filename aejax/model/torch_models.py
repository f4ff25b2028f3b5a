"""The reference PyTorch models that `aejax.model.interop` maps aejax params to, as the tutorial
defines them. `aejax.model.interop.to_torch_module` builds one holding aejax params.

Needs PyTorch (``pip install 'aejax[torch]'``). Imports nothing from aejax: PyTorch processes
that want only these modules (the benchmarks' contenders) can load this file without JAX.
"""

from __future__ import annotations

from torch import nn


class Autoencoder(nn.Module):
    """Encoder 784-128-ReLU-64 and decoder 64-128-ReLU-784-Tanh, as in the tutorial."""

    def __init__(self, input_dim: int = 784, hidden: int = 128, latent: int = 64):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, latent)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, input_dim), nn.Tanh()
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


class Classifier(nn.Module):
    """A (pretrained) encoder followed by a linear layer to the class logits."""

    def __init__(self, encoder: nn.Module, latent: int = 64, num_classes: int = 10):
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(latent, num_classes)

    def forward(self, x):
        return self.fc(self.encoder(x))
