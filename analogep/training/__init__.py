"""Training: the GradEP loop, optimizers, checkpoints and the run log."""

from analogep.training.checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    ensure_params_fit,
    load_checkpoint,
    save_checkpoint,
)
from analogep.training.loop import TrainResult, train
from analogep.training.runlog import METRICS_NAME, read_metrics

__all__ = [
    "CHECKPOINT_NAME", "METRICS_NAME", "Checkpoint", "TrainResult", "ensure_params_fit", "load_checkpoint",
    "read_metrics", "save_checkpoint", "train",
]
