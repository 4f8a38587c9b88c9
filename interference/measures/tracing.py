"""Causal tracing of facts: where a fact lives in one model, and where fine-tuning broke it.

Two experiments on the same facts, both by activation patching (`interference.models.views.run_sites`), each over every
decoder layer × site (`SITES`) × token positions (`MODES`: the subject's tokens, or the prompt's last token):

- **restoration** (`restore`): run the fine-tuned model on a fact's prompt while patching in the start model's
  activation (the model fine-tuning started from: base or snapshot). If fine-tuning forgot the fact by overwriting
  its subject's representation, restoring that representation at the right layer and site brings the fact back.
  Recovery = (p_patched(gold) − p_ft(gold)) / (p_start(gold) − p_ft(gold)) on the first answer token, and whether the
  greedy answer becomes the gold answer.
- **causal trace** (`causal_trace`, Meng et al. 2022, ROME): on the start model, corrupt the subject's token
  embeddings with Gaussian noise (`noise` × the standard deviation of the subject embeddings), then restore one
  clean state at a time. Recovery = (p_restored − p_corrupt) / (p_clean − p_corrupt): where the fact lives.

Both return a `PatchEffects`. Greedy correctness is checked by teacher forcing in the same forward pass: greedy
decoding yields the gold answer exactly when, at every answer position, the most likely next token is the gold
token, and after the answer it is the end of sequence (or a newline). Prompts and answers are tokenised as in
training (prompt ids, then answer ids, then eos), so the answer tokens are the trained targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..facts.fact import Fact, qa_prompt, qa_target
from ..io.errors import InterferenceError
from ..models.architectures import n_layers
from ..models.generation import stop_token_ids
from ..models.views import SITES, Patch, position_mask, right_pad, run_sites
from .representations import subject_spans

#: Which token positions a patch covers: every token of the subject, or the prompt's last token.
MODES = ("subject", "last")


# --- pure metrics ----------------------------------------------------------------------------------------------------

def recovery(p_patched: torch.Tensor, p_from: torch.Tensor, p_to: torch.Tensor, *, min_gap: float = 0.0
             ) -> torch.Tensor:
    """(p_patched − p_from) / (p_to − p_from), elementwise (the last dimension indexes facts, and `p_from`, `p_to` are
    [facts]); NaN where p_to − p_from < `min_gap` (nothing to recover) or is not positive.

    0: the patch did nothing; 1: it restored the probability of the state it patched from; > 1 or < 0 are possible.
    """
    gap = p_to - p_from
    defined = (gap > 0) & (gap >= min_gap)
    value = (p_patched - p_from) / torch.where(defined, gap, torch.ones_like(gap))
    return torch.where(defined, value, torch.full_like(value, float("nan")))


def nanmean(values: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mean over `dim` ignoring NaN (NaN where every value is NaN): `torch.nanmean` over the last dimension by
    default."""
    return torch.nanmean(values, dim=dim)


@dataclass(frozen=True)
class Encoded:
    """Facts tokenised as in training: prompt ids, answer ids, eos; right-padded.

    Attributes:
        input_ids, attention_mask: [n, T].
        answer_start: [n] index of the first answer token (= prompt length).
        answer_end: [n] index after the eos that ends the answer.
        subject: [n, 2] token span [start, end) of the subject inside the prompt.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    answer_start: torch.Tensor
    answer_end: torch.Tensor
    subject: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def rows(self, index: torch.Tensor) -> Encoded:
        """The facts `index`, cut to the longest of them."""
        width = int(self.answer_end[index].max())
        return Encoded(self.input_ids[index, :width], self.attention_mask[index, :width], self.answer_start[index],
                       self.answer_end[index], self.subject[index])

    def positions(self, mode: str) -> torch.Tensor:
        """[n, T] mask of the token positions a patch in `mode` covers."""
        if mode not in MODES:
            raise InterferenceError(f"unknown position mode {mode!r} (choose {', '.join(MODES)})")
        positions = self.subject if mode == "subject" else self.answer_start - 1
        return position_mask(positions, self.input_ids.shape[1])


def encode_facts(tokenizer, facts: Sequence[Fact]) -> Encoded:
    """`facts` as `Encoded` (see there)."""
    if not facts:
        raise InterferenceError("tracing needs at least one fact")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    if eos is None or pad is None:
        raise InterferenceError("tracing needs a tokenizer with an eos and a pad token")
    prompts = [qa_prompt(f) for f in facts]
    prompt_ids = tokenizer(prompts)["input_ids"]
    targets = tokenizer([qa_target(f) for f in facts], add_special_tokens=False)["input_ids"]
    rows = [list(p) + list(t) + [eos] for p, t in zip(prompt_ids, targets, strict=True)]
    ids, mask = right_pad(rows, pad)
    start = torch.tensor([len(p) for p in prompt_ids])
    return Encoded(ids, mask, start, torch.tensor([len(r) for r in rows]),
                   subject_spans(tokenizer, prompts, [f.subject for f in facts]))


def gold_probability(logits: torch.Tensor, encoded: Encoded) -> torch.Tensor:
    """Probability of each fact's first answer token after its prompt: [n]."""
    rows = torch.arange(len(encoded))
    step = logits[rows, encoded.answer_start - 1].float()
    return torch.softmax(step, dim=-1)[rows, encoded.input_ids[rows, encoded.answer_start]]


def greedy_correct(logits: torch.Tensor, encoded: Encoded, stop_ids: Sequence[int] = ()) -> torch.Tensor:
    """Whether greedy decoding after each prompt yields exactly its gold answer: [n] booleans.

    Teacher-forced: at every answer position the argmax is the next gold token; at the final (eos) position the
    argmax may also be any of `stop_ids` (e.g. a newline token, which also ends an answer).
    """
    predicted = logits.argmax(-1)
    out = []
    for i in range(len(encoded)):
        lo, hi = int(encoded.answer_start[i]), int(encoded.answer_end[i])
        guess, gold = predicted[i, lo - 1 : hi - 1], encoded.input_ids[i, lo:hi]
        ok = bool((guess[:-1] == gold[:-1]).all()) and (int(guess[-1]) == int(gold[-1]) or int(guess[-1]) in stop_ids)
        out.append(ok)
    return torch.tensor(out, dtype=torch.bool)


def score_facts(model, tokenizer, facts: Sequence[Fact], *, batch_size: int = 64, backend: str = "hf"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per fact, the probability of its first answer token and whether greedy decoding yields its gold answer (one
    teacher-forced forward pass; see the module docstring): ([n] floats, [n] booleans)."""
    encoded = encode_facts(tokenizer, facts)
    stop = stop_token_ids(tokenizer)
    p, ok = [], []
    for index in torch.arange(len(facts)).split(batch_size):
        batch = encoded.rows(index)
        logits, _ = run_sites(model, batch.input_ids, batch.attention_mask, backend=backend)
        p.append(gold_probability(logits, batch).cpu())
        ok.append(greedy_correct(logits.cpu(), batch, stop))
    return torch.cat(p), torch.cat(ok)


def random_donors(facts: Sequence[Fact], seed: int = 0) -> list[int]:
    """For each fact, the index of a random other fact about a different subject (seeded): the donors of the
    other-fact control. A fact whose subject every other fact shares is an error."""
    generator = torch.Generator().manual_seed(seed)
    donors = []
    for fact in facts:
        others = [j for j, other in enumerate(facts) if other.subject != fact.subject]
        if not others:
            raise InterferenceError(f"no fact about another subject than {fact.subject!r} to donate a state")
        donors.append(others[int(torch.randint(len(others), (1,), generator=generator))])
    return donors


# --- results ---------------------------------------------------------------------------------------------------------

@dataclass
class PatchEffects:
    """What patching did, per position mode × layer × site × fact.

    Attributes:
        modes, sites: the position modes and sites, in the order of the tensors' first and third dimensions.
        p_from: [n] gold probability of the unpatched run (fine-tuned model; corrupted start model).
        p_to: [n] gold probability of the run the states come from (start model; clean start model).
        p_patched: [modes, layers, sites, n].
        correct_from, correct_to: [n] greedy correctness of those two runs.
        correct_patched: [modes, layers, sites, n] greedy correctness with the patch.
    The causal trace averages its corrupted runs over noise draws and has no greedy answer: `correct_from` and
    `correct_patched` are None there.
    """

    modes: tuple[str, ...]
    sites: tuple[str, ...]
    p_from: torch.Tensor
    p_to: torch.Tensor
    p_patched: torch.Tensor
    correct_from: torch.Tensor | None
    correct_to: torch.Tensor
    correct_patched: torch.Tensor | None = None

    @property
    def n_layers(self) -> int:
        return self.p_patched.shape[1]

    def recovery(self, min_gap: float = 0.0) -> torch.Tensor:
        """Per fact recovery (see `recovery`): [modes, layers, sites, n]."""
        return recovery(self.p_patched, self.p_from, self.p_to, min_gap=min_gap)

    def mean_recovery(self, min_gap: float = 0.0) -> torch.Tensor:
        """Mean recovery over the facts where it is defined: [modes, layers, sites] (NaN where none is)."""
        return nanmean(self.recovery(min_gap))

    def restored(self) -> torch.Tensor | None:
        """Fraction of facts whose greedy answer is correct with the patch: [modes, layers, sites]."""
        return None if self.correct_patched is None else self.correct_patched.float().mean(-1)

    def grid(self, values: torch.Tensor, mode: str) -> list[list[float]]:
        """One mode's [layers, sites] slice of `values` ([modes, layers, sites]) as nested lists."""
        return values[self.modes.index(mode)].tolist()


def _check(modes, sites) -> tuple[tuple[str, ...], tuple[str, ...]]:
    for mode in modes:
        if mode not in MODES:
            raise InterferenceError(f"unknown position mode {mode!r} (choose {', '.join(MODES)})")
    for site in sites:
        if site not in SITES:
            raise InterferenceError(f"unknown site {site!r} (choose {', '.join(SITES)})")
    if not modes or not sites:
        raise InterferenceError("tracing needs at least one position mode and one site")
    return tuple(modes), tuple(sites)


def _donated(values: torch.Tensor, donor: Encoded, target: Encoded, mode: str) -> torch.Tensor:
    """Donor activations [n, T_donor, d] placed at the target's positions [n, T, d]: the last prompt token onto the
    last prompt token; subject tokens aligned from the subject's end (a longer target subject reuses the donor's
    first subject token)."""
    n, width = len(target), target.input_ids.shape[1]
    index = torch.zeros(n, width, dtype=torch.long)
    if mode == "last":
        index[:] = (donor.answer_start - 1)[:, None]
    else:
        offset = target.subject[:, 1:] - torch.arange(width)[None, :]  # 1 at the subject's last token
        index = (donor.subject[:, 1:] - offset).clamp(min=0)
        index = torch.maximum(index, donor.subject[:, :1]).clamp(max=values.shape[1] - 1)
    return values.gather(1, index[..., None].expand(-1, -1, values.shape[-1]).to(values.device))


def restore(model, start, tokenizer, facts: Sequence[Fact], *, donors: Sequence[int] | None = None,
            sites: Sequence[str] = SITES, modes: Sequence[str] = MODES, batch_size: int = 32,
            backend: str = "hf", desc: str | None = None) -> PatchEffects:
    """Restoration: `model` (fine-tuned) run on each fact with one (layer, site) activation at `modes` positions
    replaced by `start`'s activation on the same prompt.

    `donors` (a fact index per fact) patches in the start model's state of *another* fact instead (a control: a
    state that is not the fact's own should not bring it back); by default every fact donates to itself. With
    `desc`, a progress bar of that name counts the patched forward passes (one per batch × mode × layer × site).
    """
    modes, sites = _check(modes, sites)
    encoded = encode_facts(tokenizer, facts)
    own = donors is None
    donors = torch.arange(len(facts)) if own else torch.as_tensor(list(donors), dtype=torch.long)
    if donors.shape != (len(facts),) or (donors < 0).any() or (donors >= len(facts)).any():
        raise InterferenceError(f"donors must give one fact index in [0, {len(facts)}) per fact")
    layers = n_layers(model)
    reads = [(layer, site) for layer in range(layers) for site in sites]
    stop = stop_token_ids(tokenizer)
    parts = []
    batches = torch.arange(len(facts)).split(batch_size)
    bar = _bar(desc, len(batches) * len(modes) * len(reads))
    for index in batches:
        batch, donor = encoded.rows(index), encoded.rows(donors[index])
        ft_logits, _ = run_sites(model, batch.input_ids, batch.attention_mask, backend=backend)
        to_logits, source = run_sites(start, donor.input_ids, donor.attention_mask, read=reads, backend=backend)
        p = torch.zeros(len(modes), layers, len(sites), len(index))
        ok = torch.zeros(len(modes), layers, len(sites), len(index), dtype=torch.bool)
        for m, mode in enumerate(modes):
            mask = batch.positions(mode)
            for layer, site in reads:
                values = _donated(source[(layer, site)], donor, batch, mode)
                logits, _ = run_sites(model, batch.input_ids, batch.attention_mask,
                                      patches=[Patch(layer, site, values, mask)], backend=backend)
                p[m, layer, sites.index(site)] = gold_probability(logits, batch).cpu()
                ok[m, layer, sites.index(site)] = greedy_correct(logits.cpu(), batch, stop)
                bar.update(1)
        if not own:  # the start model on each fact's own prompt, not its donor's
            to_logits = run_sites(start, batch.input_ids, batch.attention_mask, backend=backend)[0]
        parts.append((gold_probability(ft_logits, batch).cpu(), gold_probability(to_logits, batch).cpu(), p,
                      greedy_correct(ft_logits.cpu(), batch, stop), greedy_correct(to_logits.cpu(), batch, stop), ok))
    bar.close()
    return _joined(parts, modes, sites)


def _bar(desc: str | None, total: int):
    """A progress bar named `desc` over `total` patched passes (a silent one without `desc`)."""
    return tqdm(total=total, desc=desc, unit="pass", disable=desc is None, leave=False)


def _joined(parts, modes, sites) -> PatchEffects:
    p_from, p_to, p, ok_from, ok_to, ok = (None if items[0] is None else torch.cat(items, dim=-1)
                                           for items in zip(*parts, strict=True))
    return PatchEffects(modes, sites, p_from, p_to, p, ok_from, ok_to, ok)


def noise_scale(model, tokenizer, facts: Sequence[Fact], *, backend: str = "hf") -> float:
    """Standard deviation of the subject tokens' embeddings (layer 0's residual input) over `facts` (ROME's σ)."""
    encoded = encode_facts(tokenizer, facts)
    _, found = run_sites(model, encoded.input_ids, encoded.attention_mask, read=[(0, "resid_pre")], backend=backend)
    return float(found[(0, "resid_pre")][encoded.positions("subject")].float().std())


def causal_trace(model, tokenizer, facts: Sequence[Fact], *, noise: float = 3.0, samples: int = 10, seed: int = 0,
                 sites: Sequence[str] = SITES, modes: Sequence[str] = MODES, batch_size: int = 32,
                 backend: str = "hf", desc: str | None = None) -> PatchEffects:
    """ROME's causal trace on `model`: subject embeddings corrupted by Gaussian noise of standard deviation
    `noise` × `noise_scale` (`samples` draws, seeded), then one clean (layer, site) state restored at `modes`
    positions; probabilities are means over the draws. `desc`: as in `restore`."""
    modes, sites = _check(modes, sites)
    if samples < 1 or noise <= 0:
        raise InterferenceError(f"causal_trace needs samples >= 1 and noise > 0, got {samples} and {noise}")
    encoded = encode_facts(tokenizer, facts)
    sigma = noise * noise_scale(model, tokenizer, facts, backend=backend)
    layers = n_layers(model)
    reads = [(layer, site) for layer in range(layers) for site in sites]
    generator = torch.Generator().manual_seed(seed)
    parts = []
    batches = torch.arange(len(facts)).split(batch_size)
    bar = _bar(desc, len(batches) * len(modes) * len(reads))
    for index in batches:
        batch = encoded.rows(index)
        clean_logits, clean = run_sites(model, batch.input_ids, batch.attention_mask,
                                        read=reads + [(0, "resid_pre")], backend=backend)
        # every noise draw is a copy of the batch: one forward pass per restored state covers all draws
        drawn = batch.rows(torch.arange(len(index)).repeat(samples))
        embeddings = clean[(0, "resid_pre")].repeat(samples, 1, 1)
        noisy = embeddings + sigma * torch.randn(embeddings.shape, generator=generator).to(embeddings)
        corrupt = Patch(0, "resid_pre", noisy, drawn.positions("subject"))

        def mean_p(logits: torch.Tensor, drawn: Encoded = drawn, n: int = len(index)) -> torch.Tensor:
            return gold_probability(logits, drawn).cpu().view(samples, n).mean(0)

        p = torch.zeros(len(modes), layers, len(sites), len(index))
        for m, mode in enumerate(modes):
            mask = drawn.positions(mode)
            for layer, site in reads:
                restored = Patch(layer, site, clean[(layer, site)].repeat(samples, 1, 1), mask)
                logits, _ = run_sites(model, drawn.input_ids, drawn.attention_mask, patches=[corrupt, restored],
                                      backend=backend)
                p[m, layer, sites.index(site)] = mean_p(logits)
                bar.update(1)
        corrupted, _ = run_sites(model, drawn.input_ids, drawn.attention_mask, patches=[corrupt], backend=backend)
        ok_clean = greedy_correct(clean_logits.cpu(), batch, stop_token_ids(tokenizer))
        parts.append((mean_p(corrupted), gold_probability(clean_logits, batch).cpu(), p, None, ok_clean, None))
    bar.close()
    return _joined(parts, modes, sites)
