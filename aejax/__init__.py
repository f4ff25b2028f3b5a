"""aejax: pretrain an autoencoder, transplant its encoder, fine-tune a classifier — in JAX.

The names below are the public API. The package is grouped by layer (docs/architecture.md):
configs and errors at the base, then `aejax.data`, `aejax.model` and `aejax.engine` (independent
of each other), `aejax.run` (one stage on disk and in time) above them, and the stages, the
command line and the research toolkit (`aejax.research`) on top.
"""

__version__ = "0.1.0"  # the one place it is set: pyproject.toml reads it

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
from aejax.data.datasets import (
    Dataset,
    DeviceData,
    Split,
    load_dataset,
    normalize,
    to_device,
)
from aejax.data.idx import read_idx
from aejax.engine.compile_cache import enable as enable_compile_cache
from aejax.engine.parallel import data_mesh
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
from aejax.evaluation import evaluate, evaluate_stage
from aejax.inference import encode, predict
from aejax.model.interop import (
    from_torch_state_dict,
    to_torch_module,
    to_torch_state_dict,
    torch_adam,
)
from aejax.model.models import (
    Autoencoder,
    Classifier,
    Decoder,
    Encoder,
    make_autoencoder,
    make_classifier,
)
from aejax.model.transplant import transplant_encoder
from aejax.run.observe import Observe
from aejax.run.options import RunOptions
from aejax.run.saved_stage import SavedStage, load_pretrained_encoder, load_stage
from aejax.run.stage_loop import StageResult
from aejax.stages import PipelineResult, finetune, pretrain, run_pipeline

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
    "Observe",
    "PipelineResult",
    "PretrainConfig",
    "RunOptions",
    "SavedStage",
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
    "enable_compile_cache",
    "encode",
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
    "predict",
    "pretrain",
    "pretrain_config",
    "read_idx",
    "run_pipeline",
    "to_device",
    "to_torch_module",
    "to_torch_state_dict",
    "torch_adam",
    "transplant_encoder",
]
