"""aejax: pretrain an autoencoder, transplant its encoder, fine-tune a classifier — in JAX.

The core pipeline lives in this package's top-level modules; the research toolkit (many seeds as
one program, the label-budget study, inspection figures) in `aejax.research`.
"""

from aejax.config import (
    DataConfig,
    EarlyStoppingConfig,
    FinetuneConfig,
    ModelConfig,
    ObjectiveConfig,
    PretrainConfig,
    StageConfig,
    TrainConfig,
    TransferConfig,
    finetune_config,
    pretrain_config,
)
from aejax.data import Dataset, DeviceData, Split, load_dataset, normalize, read_idx, to_device
from aejax.errors import (
    CheckpointError,
    DataError,
    EncoderMismatchError,
    StateDictMismatchError,
    TorchMissingError,
    TrainingDivergedError,
    TrainingInterrupted,
    UserError,
    WorkdirBusyError,
)
from aejax.evaluation import evaluate, evaluate_stage, load_stage
from aejax.interop import from_torch_state_dict, to_torch_state_dict, torch_adam
from aejax.models import (
    Autoencoder,
    Classifier,
    Decoder,
    Encoder,
    make_autoencoder,
    make_classifier,
)
from aejax.parallel import data_mesh
from aejax.stage_loop import StageResult
from aejax.stages import PipelineResult, finetune, pretrain, run_pipeline
from aejax.transplant import load_pretrained_encoder, transplant_encoder

__all__ = [
    "Autoencoder",
    "CheckpointError",
    "Classifier",
    "DataConfig",
    "DataError",
    "Dataset",
    "Decoder",
    "DeviceData",
    "EarlyStoppingConfig",
    "Encoder",
    "EncoderMismatchError",
    "FinetuneConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "PipelineResult",
    "PretrainConfig",
    "Split",
    "StageConfig",
    "StageResult",
    "StateDictMismatchError",
    "TorchMissingError",
    "TrainConfig",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "TransferConfig",
    "UserError",
    "WorkdirBusyError",
    "data_mesh",
    "evaluate",
    "evaluate_stage",
    "finetune",
    "finetune_config",
    "from_torch_state_dict",
    "load_dataset",
    "load_pretrained_encoder",
    "load_stage",
    "make_autoencoder",
    "make_classifier",
    "normalize",
    "pretrain",
    "pretrain_config",
    "read_idx",
    "run_pipeline",
    "to_device",
    "to_torch_state_dict",
    "torch_adam",
    "transplant_encoder",
]
