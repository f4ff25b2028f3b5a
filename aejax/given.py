"""The pieces a caller hands a stage in place of those its config describes: a model, an
optimizer, an objective, callbacks; checked at the door and fingerprinted for the run's identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import flax.linen as nn
import optax

from aejax.contracts import MetricsFn
from aejax.errors import UserError
from aejax.model import models, objectives, optim
from aejax.run.stage_run import Callback
from aejax.run.workdir import MODEL, OBJECTIVE, OPTIMIZER

T = TypeVar("T")
PerStage = Mapping[str, T]  # {"pretrain": ..., "finetune": ...}: a piece for each stage
STAGES = ("pretrain", "finetune")
SHARED = ("optimizer",)  # the pieces that may be one value for both stages


@dataclasses.dataclass(frozen=True)
class Given:
    """The pieces a caller gave a stage in place of those its config describes."""

    model: nn.Module | None
    optimizer: optax.GradientTransformation | None
    objective: MetricsFn | None

    @classmethod
    def checked(cls, model, optimizer, objective, callbacks: Sequence[Callback], config) -> Given:
        """The given pieces, once each (and every callback) is of a kind a stage can use."""
        kinds = (
            ("model", model, "a Flax Linen module", nn.Module),
            ("optimizer", optimizer, "an optax transformation", optax.GradientTransformation),
        )
        wrong = [
            f"{name} must be {kind}, got {type(value).__name__}"
            for name, value, kind, cls_ in kinds
            if value is not None and not isinstance(value, cls_)
        ]
        if objective is not None and not callable(objective):
            wrong.append(f"objective must be a metrics function, got {type(objective).__name__}")
        if isinstance(callbacks, str | bytes) or not all(map(callable, callbacks)):
            wrong.append(f"callbacks must be a sequence of callables, got {callbacks!r}")
        vae = getattr(getattr(config, "objective", None), "loss", None) == "vae"
        if vae and model is not None and objective is None:
            wrong.append("the vae objective trains the built-in VAE; give your model an objective")
        if wrong:
            raise UserError("; ".join(wrong))
        return cls(model, optimizer, objective)

    def components(self, model: nn.Module, state) -> dict[str, Any]:
        """What config.json records of the model, optimizer and objective (`aejax.run.workdir`)."""
        return {
            MODEL: models.fingerprint(model, state.params, self.model is not None),
            OPTIMIZER: optim.fingerprint(state.opt_state, self.optimizer is not None),
            OBJECTIVE: objectives.fingerprint(self.objective, self.objective is not None),
        }


def for_stage(stage: str, pieces: dict[str, Any]) -> dict[str, Any]:
    """`stage`'s share of a pipeline's `pieces`: each one's ``[stage]`` entry where it is given per
    stage, the value itself where one value serves both stages (the optimizer)."""
    shares = {}
    for name, value in pieces.items():
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(STAGES))
            if unknown:
                wrong = ", ".join(map(str, unknown))
                raise UserError(f"{name} names no stage {wrong}: the stages are pretrain, finetune")
            shares[name] = value.get(stage)
        elif value is None or name in SHARED:
            shares[name] = value
        else:
            raise UserError(
                f"a pipeline's {name} differs by stage: give {{'pretrain': ..., 'finetune': ...}}"
                f", not a {type(value).__name__}"
            )
    return shares
