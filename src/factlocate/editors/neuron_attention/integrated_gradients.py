"""Integrated-gradients attribution of MLP neurons (Dai et al., "Knowledge Neurons").

For one prompt and one answer token t, the attribution of neuron i of layer l is

    a_i * (1/m) * sum_{k=1..m} d p(t | prompt, key_l[last] := (k/m) * a) / d key_l[last]_i

where `a` is the neuron activation vector at the last prompt position (the input
of the MLP output matrix, `arch.hook_mlp_key(l)`), the baseline is zero and m is
`steps` (a Riemann sum, as the `knowledge_neurons` package computes it). Each
layer is scaled on its own, one batch of `steps` copies of the prompt per layer.
"""
from __future__ import annotations

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from factlocate import arch, tokens
from factlocate.forward import Capture, control


def neuron_attributions(
    model,
    ids: list[int],
    target_id: int,
    steps: int = 20,
    batch_size: int = 20,
    layers: list[int] | None = None,
    progress: bool = False,
) -> Float[torch.Tensor, "n_layers d_mlp"]:
    """Integrated-gradients attribution of every MLP neuron at the last position of `ids`."""
    layers = list(range(arch.n_layers(model))) if layers is None else layers
    x = tokens.to_tensor(model, ids)
    names = [arch.hook_mlp_key(layer) for layer in layers]
    capture = Capture(names)
    with torch.no_grad():
        control.run(model, x, hooks=capture.hooks, stop_at=max(layers) + 1)
    alphas = torch.arange(1, steps + 1, dtype=torch.float32, device=x.device) / steps
    rows = []
    for layer, name in tqdm(list(zip(layers, names)), desc="integrated gradients", disable=not progress, leave=False):
        act = capture[name][0, -1].float()  # [d_mlp]
        grad_sum = torch.zeros_like(act)
        for i in range(0, steps, batch_size):
            a = alphas[i : i + batch_size]
            scaled = (a[:, None] * act[None]).requires_grad_(True)  # [b, d_mlp]

            def patch(value, hook, scaled=scaled):
                value = value.expand(scaled.shape[0], *value.shape[1:]).clone()
                value[:, -1] = scaled.to(value.dtype)
                return value

            last = torch.full((len(a),), x.shape[1] - 1)
            logits = control.logits_at(model, x.expand(len(a), -1), torch.arange(len(a)), last,
                                       hooks=[(name, patch)])
            prob = logits.float().softmax(-1)[:, target_id]
            (grad,) = torch.autograd.grad(prob.sum(), scaled)
            grad_sum += grad.sum(0)
        rows.append(act * grad_sum / steps)
    return torch.stack(rows)


def coarse_neurons(scores: Float[torch.Tensor, "n_layers d_mlp"], threshold: float) -> list[tuple[int, int]]:
    """(layer row, neuron) pairs whose attribution exceeds `threshold` x the largest attribution."""
    cut = scores.max() * threshold
    return [(int(l), int(i)) for l, i in (scores > cut).nonzero().tolist()]


def refine(per_prompt: list[list[tuple[int, int]]], p: float) -> list[tuple[int, int]]:
    """Neurons selected for more than a fraction `p` of the prompts."""
    counts: dict[tuple[int, int], int] = {}
    for neurons in per_prompt:
        for n in set(neurons):
            counts[n] = counts.get(n, 0) + 1
    need = p * len(per_prompt)
    return sorted(n for n, c in counts.items() if c > need)
