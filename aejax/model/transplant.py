"""Moving a pretrained encoder, as a PyTree, into a classifier's parameters, and loading it from
the pretrain stage's checkpoint (Orbax partial restore of the encoder subtree only)."""

from __future__ import annotations

from typing import Any

from aejax.contracts import Params
from aejax.errors import EncoderMismatchError
from aejax.model import trees
from aejax.model.models import ENCODER


def encoder_mismatches(expected, actual) -> list[str]:
    """Human-readable differences in paths and shapes between two encoder trees (empty if none)."""
    words = {
        "missing": lambda d: f"{d.path}: missing in pretrained encoder",
        "unexpected": lambda d: f"{d.path}: unexpected in pretrained encoder",
        "shape": lambda d: f"{d.path}: pretrained {d.actual} vs classifier {d.expected}",
    }
    return [words[d.kind](d) for d in trees.differences(expected, actual)]


def check_encoder_fits(classifier_params, encoder_params) -> None:
    """Raise EncoderMismatchError naming each path/shape where the encoder does not fit."""
    problems = encoder_mismatches(classifier_params[ENCODER], encoder_params)
    if problems:
        raise EncoderMismatchError(
            "pretrained encoder does not fit the classifier ("
            + "; ".join(f"{ENCODER}/{p}" for p in problems)
            + "); use the same hidden and latent widths as in pretraining",
            settings=("hidden", "latent"),
        )


def transplant_encoder(classifier_params: Params, encoder_params: Params) -> dict[str, Any]:
    """Classifier params with the encoder subtree replaced by `encoder_params` (head untouched)."""
    check_encoder_fits(classifier_params, encoder_params)
    return {**classifier_params, ENCODER: encoder_params}
