"""The data contract, checked at the door, and the fingerprint of the data a run used.

What aejax takes wherever it takes images from Python (`aejax.Dataset.from_arrays`):

- images: uint8 in [0, 255], or floats in [0, 1] (any other float range is refused, never rescaled
  silently), shaped ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, features)``; kept as uint8
  ``(N, features)``, floats rounded to the nearest of the 256 levels;
- labels: integers in ``[0, num_classes)``, one per image.

A `Dataset` holds exactly that (checked when it is made); only model code (`model.apply`) sees
images normalised to [-1, 1] (`aejax.data.datasets.normalize`). Each failure is one `DataError`
saying what is wrong and what would be right.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from aejax.errors import DataError


def as_images(images: Any, what: str) -> np.ndarray:
    """`images` as uint8 ``(N, features)``, or a DataError saying why they cannot be."""
    array = np.asarray(images)
    if array.ndim not in (2, 3, 4) or array.shape[0] == 0 or array.size == 0:
        raise DataError(
            f"{what} must be shaped (N, H, W), (N, H, W, C) or (N, features) with N > 0, "
            f"got shape {array.shape}"
        )
    if np.issubdtype(array.dtype, np.floating):
        array = _unit_floats_as_uint8(array, what)
    elif array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.integer):
            raise DataError(f"{what} must be uint8 or float, got {array.dtype}")
        if array.min() < 0 or array.max() > 255:
            low, high = array.min(), array.max()
            raise DataError(f"{what} must lie in [0, 255], got values from {low} to {high}")
        array = array.astype(np.uint8)
    return array.reshape(array.shape[0], -1)


def _unit_floats_as_uint8(array: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(array).all():
        raise DataError(f"{what} hold NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise DataError(
            f"float {what} must lie in [0, 1], got values from {low:g} to {high:g}; pass uint8 "
            "pixels in [0, 255] or floats in [0, 1] (images already in [-1, 1] are for "
            "model.apply, not for a Dataset)"
        )
    return np.rint(array * 255.0).astype(np.uint8)


def as_labels(labels: Any, what: str, count: int, num_classes: int | None = None) -> np.ndarray:
    """`labels` as int32 ``(count,)`` in ``[0, num_classes)``, or a DataError saying why not."""
    array = np.asarray(labels)
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{what} must be integers (class ids), got {array.dtype}")
    if array.ndim != 1 or len(array) != count:
        raise DataError(f"{what} must be one label per image: {count} labels, got {array.shape}")
    if not len(array):
        return array.astype(np.int32)  # an empty split: `load_dataset` says so in its terms
    low, high = int(array.min()), int(array.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        limit = f"[0, {num_classes})" if num_classes is not None else "[0, number of classes)"
        raise DataError(f"{what} must lie in {limit}, got values from {low} to {high}")
    return array.astype(np.int32)


def require_stored(train_images, train_labels, test_images, test_labels) -> None:
    """What every `Dataset` holds; a DataError (pointing to `Dataset.from_arrays`) otherwise."""
    splits = {"train": (train_images, train_labels), "test": (test_images, test_labels)}
    for split, (images, labels) in splits.items():
        images, labels = np.asarray(images), np.asarray(labels)
        if images.dtype != np.uint8 or images.ndim != 2:
            raise DataError(
                f"a Dataset holds {split} images as uint8 (N, features), got {images.dtype} "
                f"{images.shape}; build it with aejax.Dataset.from_arrays, which converts them"
            )
        as_labels(labels, f"{split} labels", len(images))
    features = (np.shape(train_images)[1], np.shape(test_images)[1])
    if features[0] != features[1]:
        raise DataError(f"train and test images differ in size: {features[0]} vs {features[1]}")


def split_fingerprint(images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """A split's size and a SHA-256 of its images and labels: enough to tell data apart."""
    digest = hashlib.sha256()
    for array in (images, labels):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))  # hashed in place, not copied
    return {"examples": len(labels), "features": int(images.shape[1]), "sha256": digest.hexdigest()}
