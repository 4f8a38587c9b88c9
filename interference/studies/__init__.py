"""Studies: the library side of every analysis (`python -m analyses.<name>` and the notebooks call these).

Each study module runs its conditions (`interference.studies.setup`), returns a plain result object, and builds its
`interference.report.Report` from that object. The set-up is built once per study (`setup.load_base`) and passed
down; the suite's planner (`suite`) estimates and orders the studies of `python -m analyses.suite`.

Layer 5: imports every layer below.
"""
