"""The lean training core: SFT, self-distillation and the L2 control on D_known ∪ D_unknown (SPEC §3).

    from interference.train import TrainConfig, train
    result = train(model, tokenizer, TrainConfig(method="self_distill", epochs=10, lr=1e-3),
                   known=splits.known, unknown=splits.unknown, held=splits.held)
    result.summary()  # task / new / held accuracy, forgetting

Runs that compare conditions can share the snapshot and the teacher cache: `make_snapshot(...)` and
`build_teacher_cache(...)`, then `train(..., snapshot=s, teacher_cache=c)`.
Command line: `python -m interference.train --model M --splits DIR --out RUN [--method self_distill ...]`
(`--help` lists every option; `--resume` continues an interrupted run in RUN).

Several GPUs (one process per GPU, data parallel; same arguments, no code changes):

    torchrun --nproc-per-node 4 -m interference.train --model M --splits DIR --out RUN --method self_distill
    accelerate launch --multi_gpu --num_processes 4 -m interference.train --model M --splits DIR --out RUN ...

Each process takes every 4th batch, so the effective batch is 4 × --batch-size (divide it, or scale --lr, to
match a one-GPU run). Every process trains the snapshot and measures μ, then takes rank 0's values (broadcast), so
all build their teacher cache from the same weights; every process evaluates all facts (all take the same stop
decision); only rank 0 writes files, logs and shows progress. `--resume` works the same way. Several CPU processes
(Gloo backend) run too, e.g. `torchrun --nproc-per-node 2 ...` on a laptop. One process uses plain PyTorch:
nothing distributed is set up.
"""

from .config import TrainConfig
from .freezing import resolve_trainable
from .loop import build_teacher_cache, make_snapshot, train
from .result import EpochRecord, TrainResult
from .teacher import Snapshot, TeacherCache

__all__ = [
    "EpochRecord",
    "Snapshot",
    "TeacherCache",
    "TrainConfig",
    "TrainResult",
    "build_teacher_cache",
    "make_snapshot",
    "resolve_trainable",
    "train",
]
