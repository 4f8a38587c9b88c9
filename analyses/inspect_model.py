"""Look inside a model in one command: per-layer residual norms and logit-lens predictions for a few prompts.

    python -m analyses.inspect_model --model smollm2-135m --prompt "The capital of France is"

A thin shell over `interference.models.views`; `--backend` reads the same numbers through TransformerLens or nnsight.
"""

from __future__ import annotations

import sys

from interference.io.errors import CommandParser, InterferenceError, cli_errors
from interference.models import load_model
from interference.models.devices import DEVICE_CHOICES, DTYPES, resolve_device, resolve_dtype
from interference.models.readable import check_readable
from interference.models.views import BACKENDS, encode, last_positions, logit_lens, mlp_activations, residual_stream

DEFAULT_PROMPTS = ["The capital of France is", "Answer the following question. Where was Bergadena born?\nAnswer:"]


def summarize(model, tokenizer, prompts: list[str], *, backend: str = "hf", top_k: int = 3) -> list[dict]:
    """Per prompt and layer: residual norm at the last token, mean |m| of the MLP, and the logit-lens top tokens."""
    ids, mask = encode(tokenizer, prompts)
    positions = last_positions(mask)
    resid = residual_stream(model, ids, mask, positions=positions, backend=backend)
    mlp = mlp_activations(model, ids, mask, positions=positions, backend=backend)
    rows = []
    for p, prompt in enumerate(prompts):
        for layer in range(resid.shape[0]):
            top = logit_lens(model, resid[layer, p]).topk(top_k).indices.tolist()
            rows.append(
                dict(
                    prompt=prompt,
                    layer=layer,
                    resid_norm=resid[layer, p].norm().item(),
                    mlp_mean_abs=mlp[layer, p].abs().mean().item(),
                    top_tokens=[tokenizer.decode([t]) for t in top],
                )
            )
    return rows


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m analyses.inspect_model", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny-llama", help="built-in name, local folder or Hub name")
    parser.add_argument("--prompt", action="append", help="prompt to read (repeatable); default: two examples")
    parser.add_argument("--backend", default="hf", choices=BACKENDS)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (default auto: cuda when available)")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES), help="weights' dtype (default float32)")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        raise InterferenceError(f"--top-k must be >= 1, got {args.top_k}")
    prompts = args.prompt or DEFAULT_PROMPTS
    if any(not prompt.strip() for prompt in prompts):
        raise InterferenceError("--prompt must not be empty")
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    model, tokenizer = load_model(args.model, device=device, dtype=dtype)
    vocabulary = model.get_output_embeddings().weight.shape[0]
    if args.top_k > vocabulary:
        raise InterferenceError(f"--top-k {args.top_k} is larger than the model's vocabulary ({vocabulary} tokens)")
    check_readable(model, tokenizer, prompts, "prompt")
    rows = summarize(model, tokenizer, prompts, backend=args.backend, top_k=args.top_k)
    current = None
    for row in rows:
        if row["prompt"] != current:
            current = row["prompt"]
            print(f"\n{current!r}\n  layer  |resid|   mean|m|  logit-lens top-{args.top_k}")
        print(f"  {row['layer']:>5}  {row['resid_norm']:7.2f}  {row['mlp_mean_abs']:8.4f}  {row['top_tokens']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
