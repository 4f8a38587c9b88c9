"""The lean training core on `accelerate`: SFT, self-distillation and the L2 control (SPEC §3).

    from interference.train import TrainConfig, train
    result = train(model, tokenizer, TrainConfig(method="self_distill", lr=1e-3, target_new_acc=0.9),
                   known=splits.known, unknown=splits.unknown, held=splits.held)
    result.summary()  # task / new / held accuracy, forgetting, absolute drop

Runs that compare conditions share the snapshot and the teacher cache (`make_snapshot`, `build_teacher_cache`,
then `train(..., snapshot=s, teacher_cache=c)`). Command line: `python -m interference.train --help`; one GPU,
several GPUs and FSDP: README, "Several GPUs".
"""

from ..parameter_groups import resolve_trainable
from .config import TrainConfig
from .loop import build_teacher_cache, make_snapshot, train
from .result import EpochRecord, TrainResult
from .teacher import Snapshot, TeacherCache

__all__ = ["EpochRecord", "Snapshot", "TeacherCache", "TrainConfig", "TrainResult", "build_teacher_cache",
           "make_snapshot", "resolve_trainable", "train"]
