"""The lean training core on `accelerate`: SFT, self-distillation and the L2 control (SPEC §3; README, "Training").

Conditions compared in one study share the snapshot and the teacher cache (`make_snapshot`, `build_teacher_cache`).
"""

from ..parameter_groups import resolve_trainable
from .config import TrainConfig
from .loop import make_snapshot, train
from .result import EpochRecord, TrainResult
from .teacher import Snapshot, TeacherCache, build_teacher_cache

__all__ = ["EpochRecord", "Snapshot", "TeacherCache", "TrainConfig", "TrainResult", "build_teacher_cache",
           "make_snapshot", "resolve_trainable", "train"]
