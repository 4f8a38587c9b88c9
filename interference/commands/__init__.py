"""The library's command lines: `python -m interference.train` (`train`: fine-tune a model on a splits folder) and
`python -m interference.world` (`world`: build or load the embedded world). Each parses its options, refuses bad input
in one line before any work, and calls the library; the `__main__` modules of those packages only call these.
(`python -m interference.facts.knowledge` stays with SLiCK, whose helpers it uses.)

Layer 6, the top: may import anything below.
"""
