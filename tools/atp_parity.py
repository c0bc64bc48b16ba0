"""factlocate's attribution patching against TransformerLens's `attribution_patch` on STR pairs, on one model.

    python -m tools.atp_parity --model smollm2-135m --out docs/atp/smollm2-135m/tl-parity.json

Under STR each corrupted row is the prompt with another subject swapped in, so the rows are clean/corrupt
prompt pairs, and TransformerLens's node scores (denoising convention: the gradient on the corrupt run
times clean minus corrupt, averaged over pairs; positive means restoring raises the metric, as in factlocate)
map onto factlocate's estimates Δm = score − low:

    factlocate mlp grid, window 1, cell (t, l)   =  node ("mlp_out", position t, layer l)
    factlocate attn grid, window 1, cell (t, l)  =  Σ over heads h of node ("attn_head_out", t, l, h)
    factlocate hidden grid                       =  no node (TransformerLens scores writers, not the residual)

The attention sum holds because attn_out = Σ_h z_h W_O^h + b_O: the bias cancels in clean − corrupt and the
gradient at z_h is W_O^h times the gradient at attn_out. The metric is p(answer) at the last position.
factlocate keeps its own AtP because TransformerLens's covers clean/corrupt token pairs at single layers only:
Gaussian noise on the subject embeddings (the paper's corruption), restored windows of 10 layers, the
residual (hidden) grid and severed paths are not in it.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "The Eiffel Tower"


def library_scores(model, answer: int, clean_ids: list[int], swapped: list[list[int]]) -> dict:
    """TransformerLens's node scores. Its gradients flow only where a parameter requires grad, and factlocate
    loads models frozen: the call unfreezes them and puts every flag back after."""
    from transformer_lens.tools.analysis.attribution_patching import attribution_patch

    clean = torch.tensor([clean_ids] * len(swapped))
    corrupt = torch.tensor(swapped)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits[0, -1].float(), dim=-1)[answer]

    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            return attribution_patch(model, clean, corrupt, metric).node_scores
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
            p.grad = None


def compare(model, prompt: str, subject: str, samples: int = 3, seed: int = 1) -> dict:
    """Both sides' grids for the mlp and attn kinds (window 1) on the same STR pairs, and their differences."""
    from transformer_lens.tools.analysis.attribution_patching import Node

    from factlocate.datasets.known_facts import load_facts
    from factlocate.tracing import GridSpec, RunSpec, trace_kinds
    from factlocate.tracing.swap import subject_swap

    facts = load_facts()
    ours = trace_kinds(model, prompt, subject, [GridSpec("mlp", window=1), GridSpec("attn", window=1)],
                       RunSpec(samples=samples, seed=seed, corrupt="str", method="atp"), partners=facts)
    swap = subject_swap(model, prompt, subject, facts, samples, seed)
    if swap.partners != ours["mlp"].noise["partners"]:
        raise AssertionError("the two sides would compare different pairs")
    nodes = library_scores(model, ours["mlp"].answer_id, ours["mlp"].input_ids, swap.swapped_ids)
    n_tokens, n_layers = ours["mlp"].scores.shape
    heads = range(int(model.cfg.n_heads))
    theirs = {
        "mlp": np.array([[nodes[Node("mlp_out", t, layer=l)] for l in range(n_layers)] for t in range(n_tokens)]),
        "attn": np.array([[sum(nodes[Node("attn_head_out", t, layer=l, head=h)] for h in heads)
                           for l in range(n_layers)] for t in range(n_tokens)]),
    }
    mine = {kind: ours[kind].scores - ours[kind].low_score for kind in theirs}
    return {"partners": swap.partners, "mine": mine, "theirs": theirs,
            "kinds": {k: {"max_abs_difference": float(np.abs(mine[k] - theirs[k]).max()),
                          "largest_effect": float(np.abs(theirs[k]).max())} for k in theirs}}


def main(argv=None) -> int:
    import tools
    from factlocate import load_model
    from factlocate.io import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    result = compare(load_model(args.model), PROMPT, SUBJECT, args.samples)
    summary = {"command": tools.command("atp_parity", argv), "model": args.model, "prompt": PROMPT,
               "subject": SUBJECT, "partners": result["partners"], "kinds": result["kinds"]}
    for kind, r in result["kinds"].items():
        print(f"{kind}: max |factlocate - TransformerLens| {r['max_abs_difference']:.1e} "
              f"(largest effect {r['largest_effect']:.3f})")
    if args.out:
        write_json(args.out, summary)
    return 0


if __name__ == "__main__":
    import tools

    tools.run("atp_parity", main)
