from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from interference.io import atomic
from interference.io.errors import InterferenceError
from interference.report import (
    CONDITION_FIELDS,
    REQUIRED_FIELDS,
    VERSION_FIELDS,
    Report,
    load_results,
    to_jsonable,
    validate_results,
)
from interference.report.stats import mean_ci


@dataclass
class Config:
    """A stand-in analysis config."""

    model: str = "tiny-llama"
    epochs: int = 3
    lr: float = 1e-3


def build_report() -> Report:
    report = Report("Forgetting on the embedded world", config=Config(), seeds=[0, 1],
                    description="SFT versus self-distillation.\n\nSecond paragraph <b>escaped</b>.")
    report.add_condition("sft", 0, task_acc=0.99, new_acc=0.9, held_acc_peak=0.95, held_acc_final=0.7,
                         forgetting=0.263, drift={"layer_1": 0.11}, epochs=3)
    report.add_condition("self_distill", 1, task_acc=0.98, new_acc=0.88, held_acc_peak=0.95, held_acc_final=0.92,
                         forgetting=0.0316, drift=0.05)
    report.add_condition("known_only", 2, task_acc=1.0, new_acc=None, held_acc_peak=0.96, held_acc_final=0.96,
                         forgetting=0.0)
    report.results["forgetting_ci"] = mean_ci([0.25, 0.27, 0.28])
    report.results["per_layer_drift"] = torch.tensor([0.01, 0.05, float("nan")])
    report.results["rates"] = np.array([0.1, 0.2])
    report.results["steps"] = np.int64(12)
    section = report.section("Curves", "Held-out accuracy per epoch.")
    section.table([{"method": "sft", "forgetting": 0.2634567}, {"method": "sd", "forgetting": float("nan")}],
                  title="Forgetting")
    figure = go.Figure(go.Scatter(x=[0, 1, 2], y=[0.95, 0.81, 0.7], name="sft",
                                  error_y={"type": "data", "array": [0.01, 0.02, 0.03]}))
    figure.update_layout(title="held-out accuracy")
    section.figure(figure)
    report.section("Heat-map").figure(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])), title="per layer")
    return report


def test_writes_both_files_with_the_schema(tmp_path):
    out = build_report().write(tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == ["conditions.csv", "manifest.json", "report.html", "results.json"]
    data = json.loads((out / "results.json").read_text())
    for field in REQUIRED_FIELDS:
        assert field in data
    assert set(VERSION_FIELDS) <= set(data["versions"]) and data["versions"]["interference"]
    assert data["seeds"] == [0, 1, 2]  # the condition seeds are added
    assert data["config"] == {"model": "tiny-llama", "epochs": 3, "lr": 1e-3}
    assert [c["name"] for c in data["conditions"]] == ["sft", "self_distill", "known_only"]
    for record in data["conditions"]:
        assert set(CONDITION_FIELDS) <= set(record)
    assert data["conditions"][0]["drift"] == {"layer_1": 0.11} and data["conditions"][0]["epochs"] == 3
    assert "drift" not in data["conditions"][2] and data["conditions"][2]["new_acc"] is None
    assert data["results"]["forgetting_ci"]["n"] == 3
    assert data["results"]["per_layer_drift"][:2] == pytest.approx([0.01, 0.05])
    assert data["results"]["per_layer_drift"][2] is None
    assert data["results"]["rates"] == [0.1, 0.2] and data["results"]["steps"] == 12
    # every number shown in tables and figures is in the JSON too
    rows = data["tables"][0]["rows"]
    assert rows[0]["forgetting"] == 0.2634567 and rows[1]["forgetting"] is None
    assert data["figures"][0]["traces"][0]["y"] == [0.95, 0.81, 0.7]
    assert data["figures"][0]["traces"][0]["error_y"] == [0.01, 0.02, 0.03]
    assert data["figures"][0]["title"] == "held-out accuracy" and data["figures"][1]["title"] == "per layer"
    assert data["figures"][1]["traces"][0]["z"] == [[1, 2], [3, 4]]
    assert data["wall_time_s"] >= 0
    assert load_results(out) == data == load_results(out / "results.json")


def test_html_is_self_contained_with_the_figures(tmp_path):
    out = build_report().write(tmp_path / "run")
    page = (out / "report.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, flags=re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=", page, flags=re.IGNORECASE)
    assert page.count("* plotly.js v") == 1  # the library, embedded once
    assert page.count("Plotly.newPlot(") == 2
    assert 'id="figure-1"' in page and 'id="figure-2"' in page
    assert "Forgetting on the embedded world" in page and "Second paragraph &lt;b&gt;escaped&lt;/b&gt;." in page
    assert "<h2>Curves</h2>" in page and "<caption>Forgetting</caption>" in page
    assert "<td>0.263</td>" in page and "<td>—</td>" in page  # 3 significant digits, NaN as a dash
    assert "<h2>Per-seed records</h2>" in page and "self_distill" in page


def test_no_files_when_rendering_or_validation_fails(tmp_path, monkeypatch):
    report = build_report()
    report.results["bad"] = object()
    with pytest.raises(InterferenceError, match=r"results\.bad of type object"):
        report.write(tmp_path / "run")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())

    good = build_report()
    out = good.write(tmp_path / "run")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    failing = build_report()
    monkeypatch.setattr(Report, "to_html", lambda self, data=None, plotly_js="inline": 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.write(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old report untouched, no temp files


def test_a_crash_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    real = atomic.os.replace

    def crash(src, dst):
        if str(dst).endswith("report.html"):
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        build_report().write(tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["conditions.csv", "results.json"]  # complete, valid; the HTML was never half-written
    load_results(tmp_path / "run")  # a lone results.json (no page, no manifest) is one run's


def _valid() -> dict:
    return json.loads(json.dumps(build_report().to_dict()))


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_validation_names_a_missing_top_level_field(field):
    data = _valid()
    del data[field]
    with pytest.raises(InterferenceError, match=f"missing '{field}'"):
        validate_results(data)


@pytest.mark.parametrize("field", CONDITION_FIELDS)
def test_validation_names_a_missing_condition_field(field):
    data = _valid()
    del data["conditions"][1][field]
    with pytest.raises(InterferenceError, match=rf"conditions\[1\] is missing '{field}'"):
        validate_results(data)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("versions",), {"python": "3"}, "versions is missing 'torch'"),
        (("seeds",), ["0"], "seeds must be a list of integers"),
        (("config",), [], "config must be an object"),
        (("conditions", 0, "task_acc"), 95.0, r"task_acc must be an accuracy in \[0, 1\]"),
        (("conditions", 0, "seed"), True, "seed must be an integer"),
        (("conditions", 0, "forgetting"), "high", "forgetting must be a number or null"),
        (("conditions", 0, "name"), "", "name must be a non-empty string"),
        (("conditions", 0, "drift"), "x", "drift must be a number"),
    ],
)
def test_validation_names_a_malformed_field(path, value, message):
    data = _valid()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InterferenceError, match=message):
        validate_results(data)
    validate_results(_valid())


def test_add_condition_validates_at_once_and_to_jsonable():
    report = Report("t")
    with pytest.raises(InterferenceError, match=r"condition 'sft'\.held_acc_final must be an accuracy"):
        report.add_condition("sft", 0, task_acc=1.0, new_acc=0.5, held_acc_peak=0.9, held_acc_final=1.5,
                             forgetting=0.0)
    record = report.add_condition("sft", 0, task_acc=torch.tensor(0.5), new_acc=np.float32(0.25),
                                  held_acc_peak=0.5, held_acc_final=float("nan"), forgetting=float("inf"))
    assert record["task_acc"] == 0.5 and record["new_acc"] == 0.25
    assert record["held_acc_final"] is None and record["forgetting"] is None
    assert to_jsonable({"p": Path("/a"), "t": (1, 2), 3: {2, 1}}) == {"p": "/a", "t": [1, 2], "3": [1, 2]}
    with pytest.raises(InterferenceError, match="a report needs a non-empty title"):
        Report("  ")
    with pytest.raises(InterferenceError, match="must be a plotly figure"):
        report.section("s").figure({"data": []})


def test_load_results_errors(tmp_path):
    with pytest.raises(InterferenceError, match="not found"):
        load_results(tmp_path / "nothing")
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(InterferenceError, match="is not valid JSON"):
        load_results(tmp_path)
    broken = _valid()
    del broken["conditions"][0]["seed"]
    (tmp_path / "results.json").write_text(json.dumps(broken))
    with pytest.raises(InterferenceError, match=r"conditions\[0\] is missing 'seed'"):
        load_results(tmp_path)


def test_a_run_killed_between_writes_is_never_paired_with_an_earlier_one(tmp_path, monkeypatch):
    out = build_report().write(tmp_path / "run")
    assert load_results(out)["seeds"] == [0, 1, 2]
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"results.json", "conditions.csv", "report.html"}
    real = atomic.os.replace

    def killed(src, dst):
        if str(dst).endswith("report.html"):
            raise OSError("killed")
        return real(src, dst)

    second = Report("Forgetting on the embedded world", config=Config(), seeds=[5])
    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(OSError, match="killed"):
        second.write(out)
    monkeypatch.setattr(atomic.os, "replace", real)
    with pytest.raises(InterferenceError, match="results.json does not match manifest.json"):
        load_results(out)
    (out / "manifest.json").unlink()
    with pytest.raises(InterferenceError, match="has no manifest.json"):
        load_results(out)
    second.write(out)
    assert load_results(out)["seeds"] == [5]


def test_conditions_csv_holds_the_scalar_fields(tmp_path):
    import csv

    out = build_report().write(tmp_path / "run")
    rows = list(csv.DictReader((out / "conditions.csv").open()))
    assert [r["name"] for r in rows] == ["sft", "self_distill", "known_only"]
    assert rows[0]["held_acc_final"] == "0.7" and rows[2]["new_acc"] == ""
    assert "drift" not in rows[0]  # a mapping in one record: left to results.json


def _cells(page: str) -> list[str]:
    return re.findall(r"<td>(.*?)</td>", page, flags=re.DOTALL)


def test_no_table_cell_holds_json_or_lists(tmp_path):
    report = build_report()
    report.add_condition("sft", 3, task_acc=1.0, new_acc=0.5, held_acc_peak=0.9, held_acc_final=0.8, forgetting=0.1,
                         drift_per_layer=[0.1, 0.2], curves={"held": [0.9, 0.8]}, held_correct_final=[True, False])
    report.section("wide").table([{"a": 1, "b": [1, 2], "c": {"x": 1}, "d": 0.123456}], details=["d"])
    page = report.to_html()
    for cell in _cells(page):
        assert not re.search(r"[\[\{]", cell), cell
    assert "Per-item values of b, c are in results.json" in page
    assert "<details><summary>more columns (d)</summary>" in page


def test_config_is_a_flat_two_column_table():
    report = Report("t", config={"model": "world", "train": {"lr": 0.001, "method": "sft"}, "seeds": [0, 1]})
    page = report.to_html()
    assert "<h2>Configuration</h2>" in page and "<pre>" not in page
    assert "<td>train.lr</td><td>0.001</td>" in page and "<td>seeds</td><td>0, 1</td>" in page


def test_headline_comes_first_with_verdict_and_chart_before_per_seed_tables():
    from interference.report.paired import Check, judge

    report = build_report()
    head = report.headline("SD forgets less than SFT.", judge([Check("sd > sft", "+0.1", True, primary=True),
                                                                Check("ratio >= 3", "1.2", False)]))
    head.table([{"quantity": "SFT forgetting", "paper": "≈15 %", "ours": "26.3 %"}], title="The paper beside ours")
    head.figure(go.Figure(go.Scatter(x=[0], y=[1])), title="comparison")
    page = report.to_html()
    body = page[page.index("<body>"):]
    assert body.index('<section class="headline"') < body.index("<h2>Curves</h2>")
    assert body.index("Verdict: partly reproduces") < body.index("The paper beside ours")
    assert body.index('id="figure-3"') < body.index("<h2>Per-seed records</h2>")  # the headline chart
    data = report.to_dict()
    assert data["headline"]["claim"] == "SD forgets less than SFT."
    assert data["headline"]["verdict"]["verdict"] == "partly reproduces"


def test_table_helper_for_notebooks():
    from interference.report.tables import number_text, table

    shown = table([{"a": 0.123456, "b": None, "c": [1, 2]}])
    text = shown._repr_html_()
    assert "<td>0.123</td>" in text and "<td>—</td>" in text and "[1" not in text
    assert number_text(1234.5) == "1,234" and number_text(0.0) == "0" and number_text(True) == "yes"


def test_a_real_data_report_lists_every_relations_known_fraction():
    report = build_report()
    assert "<h2>Relations</h2>" not in report.to_html()  # the embedded world has no relation filter
    summary = {"known_fractions": {"P17": 0.139, "P495": 0.356}, "min_known_fraction": 0.3, "relations": ["P495"]}
    for seed in (3, 4):
        report.add_condition("sft", seed, task_acc=1.0, new_acc=0.5, held_acc_peak=0.9, held_acc_final=0.8,
                             forgetting=0.1, relation_filter=summary)
    page = report.to_html()
    assert page.count("<h2>Relations</h2>") == 1  # one filter shared by every record: listed once
    section = page.split("<h2>Relations</h2>")[1].split("<h2>")[0]
    cells = _cells(section)
    assert cells[:6] == ["P17", "0.139", "no", "P495", "0.356", "yes"]
    assert "at least 0.3" in section
