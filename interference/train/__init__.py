"""The lean training core on `accelerate`: SFT, self-distillation and the L2 control (SPEC §3; README, "Training").

Conditions compared in one study share the snapshot and the teacher cache (`make_snapshot`, `build_teacher_cache`).
The algorithm only: the run folder is `interference.io.run_folder`, the evaluations `interference.measures`.

Layer 4: imports `interference.io`, `models`, `facts` and `measures`.
"""

from ..measures.history import EpochRecord, TrainResult
from ..models.parameter_groups import resolve_trainable
from ..models.weights import Snapshot
from .config import TrainConfig
from .loop import make_snapshot, train
from .teacher import TeacherCache, build_teacher_cache

__all__ = ["EpochRecord", "Snapshot", "TeacherCache", "TrainConfig", "TrainResult", "build_teacher_cache",
           "make_snapshot", "resolve_trainable", "train"]
