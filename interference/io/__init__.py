"""Files and the command line, below everything else: errors with one-line messages (`errors`), atomic writes and
the cache root (`atomic`), output folders checked and locked before the work (`outputs`), a training run's folder
(`run_folder`: claim, lock, fingerprint, staged checkpoints, finite checks) and command-line options derived from
dataclasses (`dataclass_options`).

Layer 0: imports nothing of the package but `interference.numerics`.
"""
