"""Pooled results folders are rebuilt from their committed parts, not committed: the declarations in
results/pools.json name parts that are committed, and a bad pool name or a missing part is refused in one line
before any merge runs (the pools themselves are rebuilt and read by the README tests)."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import ROOT

from analyses.pools import POOLS_FILE, build_pool, main, read_pools
from interference.io.errors import InterferenceError


def test_every_pool_names_committed_parts_and_is_not_committed_itself():
    pools = read_pools(ROOT)
    tracked = subprocess.run(["git", "ls-files", "results"], capture_output=True, text=True, cwd=ROOT)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    for name, (_, *args) in pools.items():
        assert "--merge" in args and not any(p.startswith(f"results/{name}/") for p in tracked.stdout.split())
        for part in args[args.index("--merge") + 1:]:
            assert f"{part}/results.json" in tracked.stdout.split(), (name, part)


def test_an_unknown_pool_or_a_missing_part_is_refused_before_any_merge(tmp_path, capsys):
    with pytest.raises(InterferenceError, match="no pool named 'nope'"):
        build_pool(ROOT, "nope", tmp_path)
    fake = tmp_path / "repo"
    (fake / POOLS_FILE).parent.mkdir(parents=True)
    (fake / POOLS_FILE).write_text(json.dumps({"pools": {"w/p": ["forgetting", "--merge", "results/w/gone"]}}))
    with pytest.raises(InterferenceError, match=r"pool w/p: its parts \['results/w/gone'\] are missing"):
        build_pool(fake, "w/p", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["nope", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no pool named 'nope'")
    with pytest.raises(InterferenceError, match="not a checkout"):
        read_pools(tmp_path / "elsewhere")
