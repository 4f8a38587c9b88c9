"""Measures: what is read from a model and its facts. Greedy and teacher-forced exact match (`evaluation`), the
forgetting metrics of SPEC §2 (`metrics`) and a run's evaluations over time (`history`), subject representations and
their drift (`representations`), nearest-neighbour overlap (`overlap`), FFN value vectors (`ffn`) and causal tracing
(`tracing`).

Layer 3: imports `interference.io`, `models` and `facts`; training uses these measures, so nothing here imports
`interference.train`.
"""
