"""The package's layout holds: layers along the data's path with no import circle and no import upward, a training
core of at most 700 lines, and the import paths that users, the README and the notebooks use still importing."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "interference"
#: The layers, lowest first: a module may import its own package and the packages of lower layers, nothing else.
LAYERS = {"numerics": 0, "version": 0, "compat": 0, "io": 0, "models": 1, "report": 1, "facts": 2, "world": 3,
          "measures": 3, "train": 4, "studies": 5, "commands": 6}
TRAIN_BUDGET = 700


def _modules() -> dict[str, Path]:
    found = {}
    for path in LIBRARY.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The library modules `name` imports, at the top or inside functions."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] == "interference":
                for alias in node.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "interference"}
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_belongs_to_a_layer():
    assert {_layer(m) for m in MODULES} - {None} <= set(LAYERS)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if _layer(m) and not m.endswith("__main__")))
def test_a_module_imports_only_its_own_package_and_lower_layers(name):
    """`__main__` modules are entry points (they call `interference.commands`); the root package imports all."""
    own = _layer(name)
    upward = sorted(t for t in GRAPH[name]
                    if _layer(t) is None or (_layer(t) != own and LAYERS[_layer(t)] >= LAYERS[own]))
    assert not upward, f"{name} (layer {LAYERS[own]}) imports {upward}"


def test_the_library_has_no_import_circle():
    """Function-level imports count: a circle closed inside a function is a circle."""
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                circle = path[path.index(target):] + [target]
                pytest.fail("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(MODULES):
        if name not in state:
            visit(name, [name])


def test_every_package_says_what_it_holds_and_may_import():
    for init in LIBRARY.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 80, f"{init.relative_to(ROOT)} has no docstring that says what it holds"
        if init.parent.name in ("io", "models", "report", "facts", "measures", "commands"):
            assert "Layer" in doc, f"{init.relative_to(ROOT)} does not say its layer"


def test_the_training_core_is_read_in_one_sitting():
    lines = sum(len(p.read_text().splitlines()) for p in (LIBRARY / "train").glob("*.py"))
    assert lines <= TRAIN_BUDGET, f"interference/train is {lines} lines, over its budget of {TRAIN_BUDGET}"
    source = (LIBRARY / "train" / "loop.py").read_text()
    assert "from accelerate import Accelerator" in source
    objective = source[source.index("def objective("):source.index("def _step(")]
    assert all(f'"{m}"' in objective for m in ("self_distill", "l2")), "SFT, self-distillation and L2 side by side"


@pytest.mark.parametrize("old", sorted(__import__("interference.compat").compat.MOVED))
def test_a_flat_import_path_gives_the_module_at_its_new_place(old):
    from interference.compat import MOVED

    module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    assert sys.modules[old] is module


def test_a_flat_module_imports_from_its_package_too():
    from interference import experiment, views
    from interference.train import batches, checkpoint

    assert views.__name__ == "interference.models.views" and experiment.__name__ == "interference.studies.setup"
    assert batches.__name__ == "interference.facts.examples" and checkpoint.__name__ == "interference.io.run_folder"


def _public_imports() -> list[tuple[str, str, list[str]]]:
    """(where, module, names) of every `from interference… import …` in the README, the docs and the notebooks."""
    texts = [(p.name, p.read_text()) for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]]
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        texts.append((notebook.name, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")))
    found = []
    for where, text in texts:
        for module, names in re.findall(r"^\s*from (interference[\w.]*) import ([\w, ]+)$", text, re.M):
            found.append((where, module, [n.strip() for n in names.split(",") if n.strip()]))
    return found


def test_the_readme_and_the_notebooks_imports_all_resolve():
    found = _public_imports()
    assert len(found) >= 10  # the README's and the notebooks' examples are read
    for where, module, names in found:
        imported = importlib.import_module(module)
        missing = [n for n in names if not hasattr(imported, n)
                   and importlib.util.find_spec(f"{module}.{n}") is None]
        assert not missing, f"{where}: from {module} import {', '.join(missing)} fails"


def test_a_moved_command_still_runs_under_its_old_name():
    """`python -m interference.knowledge` runs the command now in `interference.facts.knowledge`."""
    done = subprocess.run([sys.executable, "-m", "interference.knowledge", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Categorise EntityQuestions facts" in done.stdout
    assert "Warning" not in done.stderr, done.stderr
