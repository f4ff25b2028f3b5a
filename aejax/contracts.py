"""What the model wing hands the engine wing, named here so that neither imports the other.

- A *metrics function* is a task: ``metrics_fn(params, images_uint8, labels, rng)`` returns
  ``{"loss": per_example_loss, ...}``, every value one number per example of the batch (the
  engine takes masked means, so a padded last batch counts each example once). `rng` is None at
  evaluation. `aejax.model.objectives` builds the two tasks of the pipeline.
- An *augmentation* extends every training batch (never a test batch):
  ``augment(images, labels, weights, key, generator)`` returns the batch with generated examples
  appended, drawing on `generator` (e.g. a frozen autoencoder's params; None when it needs none).
  `aejax.model.generation.make_augment` builds them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from numpy.typing import ArrayLike

# A model's parameters: the nested mapping of arrays that Flax's `init` returns under "params".
Params = Mapping[str, Any]
# Images or labels as the data contract takes them (NumPy or JAX arrays, nested lists).
Arrays = ArrayLike
MetricsFn = Callable[[Any, Any, Any, Any], dict[str, Any]]
Augment = Callable[[Any, Any, Any, Any, Any], tuple]


class Augmentation(NamedTuple):
    """An `Augment` function and the generator it draws on (None: it draws on nothing)."""

    augment: Augment
    generator: Any = None
