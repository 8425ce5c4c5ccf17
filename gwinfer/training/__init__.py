"""Generic training of any model with ``loss(*batch) -> per-sample losses`` (no physics in here).

``TrainConfig`` (settings), ``Trainer(model, train_set, val_set, config, out_dir).fit()`` (the loop,
data-parallel under torchrun, resumable, interruptible), ``load_checkpoint`` (read ``checkpoint.pt`` /
``best.pt``), ``build_optimizer`` / ``build_scheduler`` and the process-group helpers.
"""

from gwinfer.training.checkpoint import load_checkpoint
from gwinfer.training.config import TrainConfig
from gwinfer.training.distributed import DistInfo, cleanup, init_distributed, launch_torchrun, select_device
from gwinfer.training.optim import LAMB_OPTIONS, LambAlg2, build_optimizer, build_scheduler
from gwinfer.training.trainer import Trainer

__all__ = [
    "DistInfo",
    "LAMB_OPTIONS",
    "LambAlg2",
    "TrainConfig",
    "Trainer",
    "build_optimizer",
    "build_scheduler",
    "cleanup",
    "init_distributed",
    "launch_torchrun",
    "load_checkpoint",
    "select_device",
]
