"""Studies: the library side of every analysis (`python -m analyses.<name>` and the notebooks call these).

Each study module runs its conditions (`interference.experiment`), returns a plain result object, and builds its
`interference.report.Report` from that object.
"""
