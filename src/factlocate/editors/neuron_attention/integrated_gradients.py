"""Integrated-gradients attribution of MLP neurons (Dai et al., "Knowledge Neurons").

For one prompt and one answer token t, the attribution of neuron i of layer l is

    a_i * (1/m) * sum_{k=1..m} d p(t | prompt, key_l[last] := (k/m) * a) / d key_l[last]_i

where `a` is the neuron activation vector at the last prompt position (the input
of the MLP output matrix, `arch.hook_mlp_key(l)`), the baseline is zero and m is
`steps` (a Riemann sum, as the `knowledge_neurons` package computes it). Each
layer is scaled on its own, one batch of `steps` copies of the prompt per layer.

Two ways run those batches (`_Whole`, `_LastPosition`); the scores are the same up to float rounding:

* `_Whole`: every copy runs the whole prompt through every block: the reference.
* `_LastPosition`: only the last position is scaled, so every earlier position, and the last one
  below layer l, is the same in every copy and in the unscaled prompt. One no-grad pass keeps
  the prompt's keys and values and each block's input; each batch then runs the last position
  alone from block l up, reading the earlier positions from the cache (`forward.kv`). It is
  checked once per loaded model against `_Whole` (`last_position_verified`); where it does not
  match, or the cache lacks positions, `_Whole` runs.
"""
from __future__ import annotations

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from factlocate import arch, tokens
from factlocate.forward import Capture, Inject, control, kv


def neuron_attributions(
    model,
    ids: list[int],
    target_id: int,
    steps: int = 20,
    batch_size: int = 20,
    layers: list[int] | None = None,
    progress: bool = False,
    reuse: bool | None = None,
) -> Float[torch.Tensor, "n_layers d_mlp"]:
    """Integrated-gradients attribution of every MLP neuron at the last position of `ids`.

    `reuse` forces the last-position runs on or off (default: on where `last_position_verified`)."""
    layers = list(range(arch.n_layers(model))) if layers is None else layers
    x = tokens.to_tensor(model, ids)
    if reuse is None:
        reuse = x.shape[1] > 1 and last_position_verified(model)
    runner = None
    if reuse:
        try:
            runner = _LastPosition(model, x, layers)
        except kv.CacheIncomplete:
            pass
    runner = runner or _Whole(model, x, layers)
    alphas = torch.arange(1, steps + 1, dtype=torch.float32, device=x.device) / steps
    rows = []
    for layer in tqdm(layers, desc="integrated gradients", disable=not progress, leave=False):
        act = runner.act(layer)  # [d_mlp]
        grad_sum = torch.zeros_like(act)
        for i in range(0, steps, batch_size):
            scaled = (alphas[i : i + batch_size, None] * act[None]).requires_grad_(True)  # [b, d_mlp]
            prob = runner.logits(layer, scaled).float().softmax(-1)[:, target_id]
            (grad,) = torch.autograd.grad(prob.sum(), scaled)
            grad_sum += grad.sum(0)
        rows.append(act * grad_sum / steps)
    return torch.stack(rows)


def _scaled_key(scaled: torch.Tensor):
    """A hook setting the last position of the MLP key to `scaled` ([b, d_mlp]), one row per copy."""
    def patch(value, hook=None):
        value = value.expand(scaled.shape[0], *value.shape[1:]).clone()
        value[:, -1] = scaled.to(value.dtype)
        return value
    return patch


class _Whole:
    """Every copy of the prompt runs whole, through every block. `act(layer)`: the unscaled MLP key."""

    def __init__(self, model, x, layers: list[int]):
        self.model, self.x = model, x
        capture = Capture([arch.hook_mlp_key(layer) for layer in layers])
        with torch.no_grad():
            control.run(model, x, hooks=capture.hooks, stop_at=max(layers) + 1)
        self.capture = capture

    def act(self, layer: int) -> torch.Tensor:
        return self.capture[arch.hook_mlp_key(layer)][0, -1].float()

    def logits(self, layer: int, scaled: torch.Tensor) -> torch.Tensor:
        b = scaled.shape[0]
        last = torch.full((b,), self.x.shape[1] - 1)
        return control.logits_at(self.model, self.x.expand(b, -1), torch.arange(b), last,
                                 hooks=[(arch.hook_mlp_key(layer), _scaled_key(scaled))])


class _LastPosition(_Whole):
    """The last position alone from block `layer` up; earlier positions' keys and values from one cached pass."""

    def __init__(self, model, x, layers: list[int]):
        self.model, self.x = model, x
        names = [arch.hook_mlp_key(layer) for layer in layers] + [arch.hook_resid_in(model, layer) for layer in layers]
        capture, cache = Capture(names), kv.empty(model)
        with torch.no_grad():
            control.run(model, x, hooks=capture.hooks, past=cache)
        if not kv.holds_all(cache, x.shape[1]):  # e.g. a sliding window shorter than the prompt
            raise kv.CacheIncomplete("the forward pass left the KV cache without every position")
        self.capture, self.kv = capture, kv.layers(cache)

    def logits(self, layer: int, scaled: torch.Tensor) -> torch.Tensor:
        b, n = scaled.shape[0], self.x.shape[1]
        past = kv.injected_prefix(self.model, self.kv, torch.zeros(b, dtype=torch.long), n - 1, layer)
        resid = self.capture[arch.hook_resid_in(self.model, layer)][:, -1:]
        inject = Inject(layer, resid.expand(b, -1, -1))
        out = control.run(self.model, self.x[:, -1:], hooks=[(arch.hook_mlp_key(layer), _scaled_key(scaled))],
                          inject=inject, past=past)
        return control.unembed(self.model, out[:, -1])


def last_position_verified(model) -> bool:
    """Whether `_LastPosition` gives `_Whole`'s scores on a probe prompt (checked once per model)."""
    def probe():
        x = tokens.to_tensor(model, kv.probe_ids(model))
        target = int(x[0, 1])
        layers = sorted({0, arch.n_layers(model) // 2, arch.n_layers(model) - 1})
        out = []
        for way in (_LastPosition, _Whole):
            runner = way(model, x, layers)
            rows = []
            for layer in layers:
                act = runner.act(layer)
                scaled = (torch.tensor([0.5, 1.0], device=act.device)[:, None] * act[None]).requires_grad_(True)
                with torch.enable_grad():
                    prob = runner.logits(layer, scaled).float().softmax(-1)[:, target]
                    (grad,) = torch.autograd.grad(prob.sum(), scaled)
                rows.append(torch.cat([prob.detach(), grad.flatten()]))
            out.append(torch.cat(rows))
        scale = out[1].abs().max().clamp_min(1e-12)
        return out[0] / scale, out[1] / scale

    return kv.verified(model, "integrated gradients", probe)


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
