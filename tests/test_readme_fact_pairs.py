"""The README's table of which held-out facts each method loses beside SFT is measured, not remembered: every row is
recomputed here from the committed results files by the report's own fact-pair view."""

from __future__ import annotations

from conftest import ROOT

from interference.report.fact_pairs import fact_pair_summary
from interference.report.files import load_results

#: (results folder, method) for each row of the README's table, in its order.
ROWS = (
    ("world-default/forgetting-20-seeds", "self_distill"),
    ("world-default/forgetting-20-seeds", "ffn-only"),
    ("world-default/forgetting-20-seeds", "attention-only"),
    ("world-default/forgetting-20-seeds", "l2"),
    ("world-default/overlap-20-seeds", "uuid-sft"),
    ("world-default/remedies", "ewc"),
    ("world-default/remedies", "replay"),
    ("world-default/remedies", "lora"),
    ("world-default/remedies", "wise-ft"),
    ("smollm2-135m-gpu-size-cpu", "self_distill"),
    ("smollm2-135m-remedies-ewc-cpu/stage-11-all", "self_distill"),
    ("smollm2-135m-overlap-matched-cpu", "uuid-sft"),
)


def pairs() -> dict[tuple[str, str], dict]:
    """Each row's `fact_pair_summary` entry, by (folder, method)."""
    return {(folder, method): fact_pair_summary(load_results(ROOT / "results" / folder)["conditions"],
                                                ["sft", method], "sft")["methods"][method] for folder, method in ROWS}


def _share(s: dict) -> str:
    return f"{100 * s['lost_both'] / s['lost_other']:.0f} %"


def _times(s: dict) -> str:
    return f"{s['lost_both'] / s['lost_chance']:.1f}× chance"


def table_rows() -> list[str]:
    """The README's rows: folder, method, seeds, the facts it lost, SFT lost, both lost (its share) and by chance."""
    return [f"| `{folder}` | {method} | {s['answer_seeds']} | {s['lost_other']} | {s['lost_reference']} | "
            f"{s['lost_both']} ({_share(s)}) | {s['lost_chance']:.1f} |" for (folder, method), s in pairs().items()]


def test_the_readme_table_of_facts_lost_beside_sft_is_the_records(readme):
    lines = readme.splitlines()
    for row in table_rows():
        assert row in lines, row


def test_the_readme_reading_of_that_table_is_the_records(readme):
    text = " ".join(readme.split())
    p = pairs()
    world, big, cpu = (p[folder, "self_distill"] for folder in ("world-default/forgetting-20-seeds",
                                                                "smollm2-135m-gpu-size-cpu",
                                                                "smollm2-135m-remedies-ewc-cpu/stage-11-all"))
    assert (f"(on the world {_share(world)}, {_times(world)}; on SmolLM2 {_share(big)} and {_share(cpu)}, "
            f"{_times(big).split('×')[0]}× and {_times(cpu)})") in text
    assert f"FFN-only on the world does the same ({_share(p['world-default/forgetting-20-seeds', 'ffn-only'])})" in text
    replay, ewc = p["world-default/remedies", "replay"], p["world-default/remedies", "ewc"]
    assert f"nearly the same ones ({_share(replay)} and {_share(ewc)})" in text
    assert abs(replay["lost_other"] - replay["lost_reference"]) <= 0.1 * replay["lost_reference"]  # "about as many"
    assert p["world-default/remedies", "wise-ft"]["lost_both"] == p["world-default/remedies", "wise-ft"]["lost_other"]
    l2 = p["world-default/forgetting-20-seeds", "l2"]
    assert round(l2["lost_other"] / l2["lost_reference"]) == 3  # "three times as many"
    assert f"only {_share(l2)} of them SFT's ({_times(l2)})" in text
    lora, attention = p["world-default/remedies", "lora"], p["world-default/forgetting-20-seeds", "attention-only"]
    assert f"under half of their losses in SFT's ({_share(lora)} and {_share(attention)})" in text
    uuid, uuid_smol = p["world-default/overlap-20-seeds", "uuid-sft"], p["smollm2-135m-overlap-matched-cpu", "uuid-sft"]
    assert (f"lose {uuid['lost_other']} facts in 20 seeds on the world; on SmolLM2 {uuid_smol['lost_other']}, "
            f"{_share(uuid_smol)} of them SFT's") in text


def test_the_readme_example_prints_what_fact_pair_returns(readme):
    from interference.report.fact_pairs import fact_pair

    records = load_results(ROOT / "results" / "world-default" / "remedies")["conditions"]
    sft, sd = (next(r for r in records if (r["name"], r["seed"]) == (m, 0)) for m in ("sft", "self_distill"))
    p = fact_pair(sft, sd)
    assert (f'# {{"known": {p["known"]}, "lost_reference": {p["lost_reference"]}, "lost_other": {p["lost_other"]}, '
            f'"lost_both": {p["lost_both"]}, "lost_chance": {str(p["lost_chance"])[:4]}…}};') in readme
