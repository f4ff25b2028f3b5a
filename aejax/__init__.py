"""aejax: pretrain an autoencoder, transplant its encoder, fine-tune a classifier — in JAX."""

from aejax.configs import (
    DataConfig,
    ModelConfig,
    StageConfig,
    TrainConfig,
    finetune_config,
    pretrain_config,
)
from aejax.data import Dataset, load_dataset, normalize, read_idx
from aejax.errors import CheckpointError, DataError, EncoderMismatchError, UserError
from aejax.evaluation import evaluate, evaluate_stage
from aejax.interop import (
    StateDictMismatchError,
    TorchMissingError,
    from_torch_state_dict,
    to_torch_state_dict,
    torch_adam,
)
from aejax.models import (
    Autoencoder,
    Classifier,
    Decoder,
    Encoder,
    make_autoencoder,
    make_classifier,
)
from aejax.stages import finetune, pretrain
from aejax.transplant import load_pretrained_encoder, transplant_encoder

__all__ = [
    "Autoencoder",
    "CheckpointError",
    "Classifier",
    "DataConfig",
    "DataError",
    "Dataset",
    "Decoder",
    "Encoder",
    "EncoderMismatchError",
    "ModelConfig",
    "StageConfig",
    "StateDictMismatchError",
    "TorchMissingError",
    "TrainConfig",
    "UserError",
    "evaluate",
    "evaluate_stage",
    "finetune",
    "finetune_config",
    "from_torch_state_dict",
    "load_dataset",
    "load_pretrained_encoder",
    "make_autoencoder",
    "make_classifier",
    "normalize",
    "pretrain",
    "pretrain_config",
    "read_idx",
    "to_torch_state_dict",
    "torch_adam",
    "transplant_encoder",
]
