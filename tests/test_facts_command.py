"""`python -m analyses.facts`: the per-fact views of any results folder, read without a model, and its refusals."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from analyses.facts import main, markdown
from interference.report.fact_losses import fact_loss_rows, fact_loss_summary
from interference.report.fact_pairs import fact_pair_summary
from interference.report.files import load_results

REMEDIES = ROOT / "results" / "world-default" / "remedies"
HYPOTHESES = ROOT / "results" / "hypotheses-default-world"


def test_markdown_keeps_first_seen_columns_and_leaves_missing_cells_empty():
    assert markdown([{"a": 1}, {"b": 2, "a": None}]).splitlines() == ["| a | b |", "|---|---|", "| 1 |  |", "|  | 2 |"]


def test_the_command_prints_both_views_of_a_committed_folder(capsys):
    assert main([str(REMEDIES), "--methods", "sft", "self_distill", "ewc"]) == 0
    out = capsys.readouterr().out
    records = load_results(REMEDIES)["conditions"]
    assert markdown(fact_loss_rows(records, ["sft", "self_distill", "ewc"])) in out
    assert "## Beside sft" in out and "Against sft, fact by fact: self_distill lost" in out
    assert main([str(REMEDIES), "--methods", "sft", "self_distill", "--json"]) == 0
    views = json.loads(capsys.readouterr().out)
    assert views["losses"] == json.loads(json.dumps(fact_loss_summary(records, ["sft", "self_distill"])))
    assert views["pairs"] == json.loads(json.dumps(fact_pair_summary(records, ["sft", "self_distill"], "sft")))


def test_a_folder_without_sft_reads_its_records_and_pairs_only_with_a_named_reference(capsys):
    assert main([str(HYPOTHESES)]) == 0
    assert "## Beside" not in capsys.readouterr().out  # no sft there: the answers per record, nothing paired
    assert main([str(HYPOTHESES), "--reference", "name x1000", "--methods", "name x1000", "uuid x1000"]) == 0
    assert "Against name x1000, fact by fact: uuid x1000 lost" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["nowhere"], "results file nowhere not found"),
    ([str(REMEDIES), "--methods", "sft", "nope"], "--methods: nope not in"),
    ([str(REMEDIES), "--reference", "nope"], "--reference: nope not in"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
