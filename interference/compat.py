"""The import paths of the flat layout, kept: `import interference.views` or `from interference.experiment import
ExperimentConfig` still work, and give the very module at its new place (`interference.models.views`,
`interference.studies.setup`). It is one module object under two names, so a patch made through either name is seen
through both. `python -m interference.knowledge` still runs its command. README, "Where things live", has the layout.

New code imports from the new places; `MOVED` is the whole table.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: Old module path → where the module lives now.
MOVED = {
    "interference.accumulate": "interference.report.accumulate",
    "interference.answers": "interference.facts.answers",
    "interference.architectures": "interference.models.architectures",
    "interference.atomic": "interference.io.atomic",
    "interference.charts": "interference.report.charts",
    "interference.dataclass_options": "interference.io.dataclass_options",
    "interference.datasets": "interference.facts.datasets",
    "interference.devices": "interference.models.devices",
    "interference.errors": "interference.io.errors",
    "interference.evaluation": "interference.measures.evaluation",
    "interference.experiment": "interference.studies.setup",
    "interference.ffn": "interference.measures.ffn",
    "interference.generation": "interference.models.generation",
    "interference.knowledge": "interference.facts.knowledge",
    "interference.knowledge_cache": "interference.facts.knowledge_cache",
    "interference.layout_detection": "interference.models.layout_detection",
    "interference.metrics": "interference.measures.metrics",
    "interference.new_facts": "interference.facts.new_facts",
    "interference.outputs": "interference.io.outputs",
    "interference.overlap": "interference.measures.overlap",
    "interference.paired": "interference.report.paired",
    "interference.parameter_groups": "interference.models.parameter_groups",
    "interference.readable": "interference.models.readable",
    "interference.realdata": "interference.facts.realdata",
    "interference.report_files": "interference.report.files",
    "interference.representations": "interference.measures.representations",
    "interference.splits": "interference.facts.splits",
    "interference.stats": "interference.report.stats",
    "interference.studies.headline": "interference.report.headline",
    "interference.suite": "interference.studies.suite",
    "interference.tables": "interference.report.tables",
    "interference.tracing": "interference.measures.tracing",
    "interference.train.batches": "interference.facts.examples",
    "interference.train.checkpoint": "interference.io.run_folder",
    "interference.train.result": "interference.measures.history",
    "interference.views": "interference.models.views",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path in `MOVED` and loads it as the module at the new one."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        """Nothing to run: the module at the new path has run already."""

    def get_code(self, name):
        """What `python -m OLD` runs: the module at the new path, as `__main__`."""
        return compile(f"import runpy; runpy.run_module({MOVED[name]!r}, run_name='__main__', alter_sys=True)",
                       f"<{name}: moved to {MOVED[name]}>", "exec")


def install() -> None:
    """Put the finder of old paths on `sys.meta_path` (once)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModules())
