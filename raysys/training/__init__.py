"""Stage 2: training ViewSAM on Stage 1's pseudo labels with Ray Train.

``config`` (``TrainConfig`` / ``StageConfig``, the paper's staged schedule and the quick
CPU one), ``data`` (clip sources, sample planning, Ray Data decoding), ``model`` (building
the run's model, per-stage trainable groups), ``trainer`` (``run_training`` and the
``TorchTrainer`` worker loop), ``checkpoint`` (self-describing checkpoints,
``load_viewsam_checkpoint``), ``curves`` (loss plots).
"""

from raysys.training.checkpoint import LoadedCheckpoint, load_viewsam_checkpoint
from raysys.training.config import StageConfig, TrainConfig, quick_config
from raysys.training.data import open_source
from raysys.training.trainer import TrainingResult, TrainResources, run_training

__all__ = [
    "LoadedCheckpoint",
    "StageConfig",
    "TrainConfig",
    "TrainResources",
    "TrainingResult",
    "load_viewsam_checkpoint",
    "open_source",
    "quick_config",
    "run_training",
]
