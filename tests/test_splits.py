"""D_known / D_unknown / D_held: the >=30 %-known relation filter, disjointness, sizes, seeds and files."""

from __future__ import annotations

import pytest

from interference.facts import Fact
from interference.facts.datasets import DataError
from interference.facts.knowledge import FactKnowledge
from interference.facts.splits import SplitConfig, build_splits, known_fractions, load_splits, save_splits
from interference.io.errors import InterferenceError


def categorised(relation: str, **counts: int) -> tuple[list[Fact], list[str]]:
    """`counts` facts of each category for `relation`, interleaved so no split can be a prefix of the input."""
    labels = [name for name, n in counts.items() for _ in range(n)]
    labels = labels[::2] + labels[1::2]
    facts = [Fact(f"{relation}-e{i}", relation, f"o{i}", f"What about {relation}-e{i}?") for i in range(len(labels))]
    return facts, labels


def pool(*parts: tuple[list[Fact], list[str]]) -> tuple[list[Fact], list[str]]:
    facts = [f for part in parts for f in part[0]]
    labels = [c for part in parts for c in part[1]]
    return facts, labels


@pytest.fixture
def data():
    """r_high: 60 % HighlyKnown; r_edge: exactly 30 %; r_low: 20 % (filtered out)."""
    return pool(
        categorised("r_high", HighlyKnown=30, MaybeKnown=5, WeaklyKnown=5, Unknown=10),
        categorised("r_edge", HighlyKnown=6, MaybeKnown=2, Unknown=12),
        categorised("r_low", HighlyKnown=4, Unknown=16),
    )


def test_known_fractions(data):
    assert known_fractions(*data) == pytest.approx({"r_high": 0.6, "r_edge": 0.3, "r_low": 0.2})


def test_relation_filter_categories_and_disjointness(data):
    facts, labels = data
    splits = build_splits(facts, labels)
    assert splits.relations == ("r_high", "r_edge")
    label_of = dict(zip((f.key for f in facts), labels, strict=True))
    assert {label_of[f.key] for f in splits.known + splits.held} == {"HighlyKnown"}
    assert {label_of[f.key] for f in splits.unknown} == {"Unknown"}
    every = splits.known + splits.unknown + splits.held
    assert len(every) == len({f.key for f in every}), "splits overlap"
    assert {f.relation for f in every} == {"r_high", "r_edge"}
    # Defaults: every Unknown fact of the kept relations; the HighlyKnown pool (36) halved between known and held.
    assert splits.counts() == {"known": 18, "unknown": 22, "held": 18}
    order = {f.key: i for i, f in enumerate(facts)}
    for split in (splits.known, splits.unknown, splits.held):
        assert [order[f.key] for f in split] == sorted(order[f.key] for f in split)


def test_min_known_fraction_is_an_option(data):
    facts, labels = data
    assert build_splits(facts, labels, SplitConfig(min_known_fraction=0.31)).relations == ("r_high",)
    assert build_splits(facts, labels, SplitConfig(min_known_fraction=0.0)).relations == ("r_high", "r_edge", "r_low")


def test_sizes(data):
    facts, labels = data
    splits = build_splits(facts, labels, SplitConfig(n_known=10, n_unknown=7, n_held=20))
    assert splits.counts() == {"known": 10, "unknown": 7, "held": 20}
    assert build_splits(facts, labels, SplitConfig(n_held=6)).counts() == {"known": 30, "unknown": 22, "held": 6}
    assert build_splits(facts, labels, SplitConfig(n_known=6)).counts() == {"known": 6, "unknown": 22, "held": 30}


def test_deterministic_for_a_seed(data):
    facts, labels = data
    a = build_splits(facts, labels, SplitConfig(seed=3))
    b = build_splits(list(facts), list(labels), SplitConfig(seed=3))
    c = build_splits(facts, labels, SplitConfig(seed=4))
    assert a == b
    assert a.known != c.known and {f.key for f in a.known + a.held} == {f.key for f in c.known + c.held}


def test_accepts_fact_knowledge_rows(data):
    facts, labels = data
    p = {"HighlyKnown": 1.0, "MaybeKnown": 0.5, "WeaklyKnown": 0.0, "Unknown": 0.0}
    rows = [FactKnowledge(f, p[c], 0.5 if c == "WeaklyKnown" else 0.0, c) for f, c in zip(facts, labels, strict=True)]
    assert build_splits(facts, rows) == build_splits(facts, labels)


def one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_empty_splits_are_errors():
    facts, labels = categorised("r", HighlyKnown=5)
    with pytest.raises(InterferenceError, match="split 'unknown' would be empty") as err:
        build_splits(facts, labels)
    assert "5 HighlyKnown, 0 Unknown facts in relations r" in one_line(err)
    facts, labels = categorised("r", HighlyKnown=1, Unknown=1)
    with pytest.raises(InterferenceError, match="split 'held' would be empty"):
        build_splits(facts, labels)
    facts, labels = categorised("r", HighlyKnown=4, Unknown=4)
    with pytest.raises(InterferenceError, match="split 'held' would be empty"):
        build_splits(facts, labels, SplitConfig(n_known=4))


def test_no_relation_passes_the_filter():
    facts, labels = pool(categorised("a", HighlyKnown=1, Unknown=9), categorised("b", HighlyKnown=2, Unknown=8))
    with pytest.raises(InterferenceError) as err:
        build_splits(facts, labels)
    assert "no relation has >= 30% HighlyKnown facts (HighlyKnown fractions: b 0.20, a 0.10)" in one_line(err)
    assert "--min-known-fraction" in one_line(err)
    with pytest.raises(InterferenceError, match="no relation"):
        build_splits([], [])


def test_splits_list_every_relation_s_known_fraction(data):
    facts, labels = data
    splits = build_splits(facts, labels, SplitConfig(min_known_fraction=0.5))
    summary = splits.knowledge_summary()
    assert summary["known_fractions"] == {r: round(f, 4) for r, f in known_fractions(facts, labels).items()}
    assert summary["min_known_fraction"] == 0.5
    assert set(summary["relations"]) == {r for r, f in known_fractions(facts, labels).items() if f >= 0.5}
    assert set(summary["relations"]) < set(summary["known_fractions"])  # the filter dropped some


def test_sizes_beyond_the_pools(data):
    facts, labels = data
    with pytest.raises(InterferenceError, match="n_unknown=23 but only 22 Unknown facts"):
        build_splits(facts, labels, SplitConfig(n_unknown=23))
    with pytest.raises(InterferenceError, match="n_known=30 \\+ n_held=7 needs more HighlyKnown facts than the 36"):
        build_splits(facts, labels, SplitConfig(n_known=30, n_held=7))
    with pytest.raises(InterferenceError, match="n_known=37 needs more"):
        build_splits(facts, labels, SplitConfig(n_known=37))


def test_bad_inputs(data):
    facts, labels = data
    with pytest.raises(InterferenceError, match="got 60 facts but 59 categories"):
        build_splits(facts[:60], labels[:59])
    with pytest.raises(InterferenceError, match="category 2 is 'Known'"):
        build_splits(facts[:3], ["HighlyKnown", "Unknown", "Known"])
    with pytest.raises(InterferenceError, match="duplicate fact \\('r_high', 'r_high-e0'\\)"):
        build_splits(facts + facts[:1], labels + labels[:1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_known": 0}, "n_known must be a positive integer or None"),
        ({"n_held": 2.5}, "n_held must be a positive integer or None"),
        ({"n_unknown": True}, "n_unknown must be a positive integer or None"),
        ({"min_known_fraction": 1.5}, "min_known_fraction must be in \\[0, 1\\]"),
        ({"seed": "1"}, "seed must be an integer"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(InterferenceError, match=match):
        SplitConfig(**kwargs)


def test_save_load_round_trip(data, tmp_path):
    facts, labels = data
    splits = build_splits(facts, labels, SplitConfig(seed=1))
    path = save_splits(splits, tmp_path / "splits")
    assert sorted(p.name for p in path.iterdir()) == ["held.jsonl", "known.jsonl", "relations.json", "unknown.jsonl"]
    assert load_splits(path) == splits


def test_load_splits_errors(data, tmp_path):
    with pytest.raises(DataError, match="splits directory not found"):
        load_splits(tmp_path / "none")
    path = save_splits(build_splits(*data), tmp_path / "splits")
    (path / "held.jsonl").unlink()
    with pytest.raises(DataError, match="held.jsonl: file not found"):
        load_splits(path)
    (path / "held.jsonl").write_text("")
    with pytest.raises(DataError, match="held.jsonl: no facts in file"):
        load_splits(path)


def test_new_facts_of_one_relation_leave_d_known_and_d_held_as_drawn_without_it(data):
    facts, labels = data
    every = build_splits(facts, labels, SplitConfig(n_known=10, n_unknown=5, n_held=10, seed=2))
    edge = build_splits(facts, labels, SplitConfig(n_known=10, n_unknown=5, n_held=10, seed=2, new_relation="r_edge"))
    assert {f.relation for f in edge.unknown} == {"r_edge"} and len(edge.unknown) == 5
    assert (edge.known, edge.held) == (every.known, every.held)  # the same seed's D_known and D_held: a paired design
    with pytest.raises(InterferenceError, match=r"new_relation 'r_low' is not a relation kept by the split \(kept: "
                                                r"r_high, r_edge; min_known_fraction 0.3\)"):
        build_splits(facts, labels, SplitConfig(new_relation="r_low"))  # filtered out by its known fraction
    with pytest.raises(InterferenceError, match="n_unknown=13 but only 12 Unknown facts in relation r_edge"):
        build_splits(facts, labels, SplitConfig(n_unknown=13, new_relation="r_edge"))
    with pytest.raises(InterferenceError, match="SplitConfig.new_relation must be a relation's name or None"):
        SplitConfig(new_relation="")
