"""The real-model suite: which analyses it runs, how many conditions each trains, what that should cost, and the
index page that ties their reports together (`python -m analyses.suite` runs it).

Parts, in order: Table 1 (`forgetting`), the §5 grid (`hypotheses`), drift and overlap (`overlap`), causal tracing
(`tracing`), freezing by layer blocks (`freezing`) and, when asked for, the remedies (`remedies`). Every part's
report is computed from its per-seed records, so seeds accumulate over runs into the same folder
(`interference.report.accumulate`): a run adds all its seeds to Table 1, the grid and the remedies, and one seed
to each of the others (`ONE_SEED_A_RUN`).

The cost model is one number, seconds per fact-epoch: a condition that trains K + U facts and evaluates K + U + H
facts for E epochs costs about E · (K + U + H) fact-epochs (training a fact and greedily decoding one cost about the
same on the models this toolkit runs; acquisition checks are folded in), plus the passes its measures make with
gradients (the remedies' Fisher, the path integral of remedies and freezing: `Cell.passes`). It is read from the
records of an earlier run in the folder when there is one, else calibrated on this machine before the work (a few
SFT steps and one greedy evaluation), with the epochs per condition assumed.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..io.errors import InterferenceError
from ..measures.attribution import STEPS, typical_passes
from ..report.files import RESULTS_FILE, load_results

#: The analyses of the suite, in the order they run: the paper's (the default) and the remedies (on request).
PARTS = ("forgetting", "hypotheses", "overlap", "tracing", "freezing", "remedies")
DEFAULT_PARTS = PARTS[:5]
#: The analyses whose seeds accumulate over runs into one folder (reports computed from per-seed records): all parts.
ACCUMULATING = PARTS
#: Parts a suite run adds one seed to (the first of its seeds the folder lacks), so that a session's time goes to
#: Table 1 and the grid: freezing trains many conditions a seed, drift/overlap and tracing look inside rather than
#: measure the headline. Their seeds still accumulate, one a run.
ONE_SEED_A_RUN = ("overlap", "tracing", "freezing")
#: Epochs per condition assumed by a calibration (conditions train to matched acquisition; SmolLM2-135M at lr 1e-4
#: reached 0.9 in about 5 epochs on an H200, the embedded world in 10-20).
ASSUMED_EPOCHS = 8


@dataclass(frozen=True)
class Cell:
    """One kind of condition of a part: how many of them per seed, and the facts each trains and evaluates."""

    part: str
    conditions: int
    trained: int
    evaluated: int
    passes: int = 0  # fact passes with gradients per condition besides the epochs' (the remedies' measures)


def plan(parts: Sequence[str], *, n_known: int, n_unknown: int, n_held: int, layers: int,
         counts: Sequence[int], band: int, methods: int = 6, remedies: int = 8,
         attribution_steps: int = STEPS) -> list[Cell]:
    """The conditions each part trains per seed, with their facts (see the analyses for what each condition is;
    `remedies` counts WiSE-FT's sweep of interpolations as one). Measures add passes with gradients: the held-out
    loss's path integral (`typical_passes(attribution_steps)` over D_held, a remedy's or a freezing condition's: a
    split that halves intervals spends up to `attribution_steps`) and a remedy's share
    of the seed's Fisher passes (one over D_known and one over D_held, example by example)."""
    unknown = [Cell("hypotheses", 2, n_known + c, n_known + c + n_held) for c in counts]
    split = math.ceil(typical_passes(attribution_steps) * n_held)
    cells = {
        "forgetting": [Cell("forgetting", methods, n_known + n_unknown, n_known + n_unknown + n_held)],
        "hypotheses": unknown,
        # sft, self-distillation, UUID-keyed sft, and the causal test's two (a real model's splits folder: 3)
        "overlap": [Cell("overlap", 5, n_known + n_unknown, n_known + n_unknown + n_held)],
        "tracing": [Cell("tracing", 3, n_known + n_unknown, n_known + n_unknown + n_held)],
        "freezing": [Cell("freezing", 1 + 2 * math.ceil(layers / band), n_known + n_unknown,
                          n_known + n_unknown + n_held, split)],
        "remedies": [Cell("remedies", remedies, n_known + n_unknown, n_known + n_unknown + n_held,
                          split + math.ceil((n_known + n_held) / remedies))],
    }
    unknown_parts = [p for p in parts if p not in cells]
    if unknown_parts:
        raise InterferenceError(f"unknown suite part {unknown_parts[0]!r} (choose from {', '.join(PARTS)})")
    return [cell for part in parts for cell in cells[part]]


def fact_epochs(cell: Cell, epochs: float) -> float:
    """The cost of one condition of `cell` in fact-epochs (see the module's docstring)."""
    return epochs * cell.evaluated + cell.passes


def rate_from_records(folder: str | Path) -> tuple[float, float, int] | None:
    """(seconds per fact-epoch, mean epochs per condition, conditions) from the earlier reports under `folder`, or
    None when there are none. A condition's facts are its config's K + U + H, with U its record's `n_new` where it
    has one (the grid's cells train their own count of new facts, 10⁴ where Table 1 trains 300)."""
    seconds = work = epochs = 0.0
    n = 0
    for results in Path(folder).glob(f"*/{RESULTS_FILE}"):
        try:
            data = load_results(results)
        except InterferenceError:
            continue
        config = data.get("config") or {}
        for record in data["conditions"]:
            unknown = record["n_new"] if record.get("n_new") is not None else config.get("n_unknown")
            size = sum(int(v or 0) for v in (config.get("n_known"), unknown, config.get("n_held")))
            if record.get("seconds") and record.get("epochs") and size:
                seconds += record["seconds"]
                work += record["epochs"] * size
                epochs += record["epochs"]
                n += 1
    return (seconds / work, epochs / n, n) if n else None


def calibrate(setup, train_config, *, steps: int = 3, facts: int | None = None) -> tuple[float, float]:
    """(seconds per fact-epoch, seconds of compiling) on this machine: `steps` SFT steps as `train_config` runs them
    (compiled at a fixed width with `torch_compile`, after warm-up steps that compile; eager after one) and one
    greedy evaluation of `facts` facts of `setup` (default: one evaluation batch, as the runs evaluate, at most 32 on
    a CPU), on a copy of its model. A GPU decodes a batch of 512 facts in about the time of 32, so timing 32 made
    the estimate several times too long there (2026-12-04, H200: 131 s per Table 1 condition, where 2026-11 measured
    38 s)."""
    import copy

    import torch

    from ..facts.examples import Examples
    from ..measures.evaluation import EVAL_BATCH, fact_correctness
    from ..models.devices import inference_batch_size
    from ..train.loop import step_forward
    from ..train.losses import answer_cross_entropy

    model = copy.deepcopy(setup.model).train()
    mode = train_config.torch_compile
    forward = step_forward(model, mode)
    examples = Examples(setup.tokenizer, setup.known + setup.unknown)
    optimizer = torch.optim.AdamW(model.parameters(), train_config.lr)
    device = next(model.parameters()).device
    size, warmup = train_config.batch_size, 1 if mode == "none" else 3  # CUDA graphs record on the second call
    elapsed = compiling = 0.0
    for step in range(warmup + steps):
        index = torch.arange(step * size, (step + 1) * size) % len(examples)
        batch = examples.batch(index, fixed=mode != "none").to(device)
        start = time.perf_counter()
        logits = forward(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        answer_cross_entropy(logits, batch.labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step < warmup:
            compiling += time.perf_counter() - start
        else:
            elapsed += time.perf_counter() - start
    train_per_fact = elapsed / (steps * size)
    if facts is None:
        facts = 32 if device.type == "cpu" else (train_config.eval_batch_size
                                                 or inference_batch_size(EVAL_BATCH, device))
    facts_read = (setup.known + setup.unknown + setup.held)[:facts]
    start = time.perf_counter()
    fact_correctness(model, setup.tokenizer, facts_read, batch_size=len(facts_read),
                     max_new_tokens=train_config.eval_max_new_tokens or 16)
    eval_per_fact = (time.perf_counter() - start) / len(facts_read)
    return train_per_fact + eval_per_fact, compiling if mode != "none" else 0.0


def estimate(cells: Sequence[Cell], seeds: dict[str, int], rate: float, epochs: float) -> dict[str, float]:
    """Estimated seconds per part: `seeds[part]` seeds of each of its cells at `rate` seconds per fact-epoch."""
    out: dict[str, float] = {}
    for cell in cells:
        out[cell.part] = out.get(cell.part, 0.0) + seeds[cell.part] * cell.conditions * rate * fact_epochs(cell,
                                                                                                           epochs)
    return out


def index_page(folder: str | Path, parts: Sequence[str], *, title: str, note: str = "") -> tuple[str, dict]:
    """The suite's index page (HTML) and its JSON twin: per part, the claim, the verdict, the seeds and where they
    ran, linked to the part's report."""
    folder = Path(folder)
    rows, entries = [], []
    for part in parts:
        path = folder / part / RESULTS_FILE
        if not path.is_file():
            entries.append({"part": part, "report": None, "verdict": "not run"})
            rows.append(f"<tr><td>{part}</td><td colspan=4>not run</td></tr>")
            continue
        data = load_results(path)
        head = data.get("headline") or {}
        verdict = head.get("verdict") or {}
        text = verdict.get("verdict") if isinstance(verdict, dict) else None
        device = data["results"].get("device")  # records from before each kept its machine ran there
        machines = sorted({r.get("machine") or device or "unknown" for r in data["conditions"]})
        entry = {"part": part, "report": f"{part}/report.html", "title": data["title"], "claim": head.get("claim"),
                 "verdict": text or f"not tested ({head.get('untested')})", "seeds": data["seeds"],
                 "conditions": len(data["conditions"]), "machines": machines}
        entries.append(entry)
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in (
            f'<a href="{html.escape(entry["report"])}">{html.escape(data["title"])}</a>',
            html.escape(entry["verdict"]), html.escape(" ".join(map(str, data["seeds"]))),
            entry["conditions"], html.escape(", ".join(machines) or "—"))) + "</tr>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.2em auto;padding:0 1em}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
            "th{background:#f4f4f4}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(note)}</p><table><tr><th>report</th><th>verdict</th>"
            "<th>seeds</th><th>conditions</th><th>machines</th></tr>" + "".join(rows) + "</table></body></html>\n")
    return page, {"title": title, "note": note, "parts": entries}
