"""Knowledge Neurons (Dai et al. 2022), as the ROME paper ran it as a baseline.

1. Attribute: integrated gradients (20 steps, batch 20, zero baseline) over the MLP
   neurons of every layer at the last prompt position, for p(first token of the
   true answer) (`target_true`; the model's own top-1 token when it is absent).
   Only the first answer token is attributed, as in the `knowledge_neurons`
   package; multi-token answers are not averaged.
2. Select: coarse neurons with attribution > adaptive_threshold (0.2) x the largest
   attribution over all layers. Refinement across prompts (keep neurons selected
   for more than p = 0.4 of the prompts) is off (`refine: false`), as in ROME's
   runs, where the only prompt is the rewrite prompt.
3. Edit: for each selected neuron (layer l, i), row i of layer l's MLP output
   matrix ([d_mlp, d_model]) gets `- 2 * W_E[original top-1] + 2 * W_E[first token
   of target_new]`, with W_E the input word embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from factlocate import arch, tokens
from factlocate.deltas import WeightDelta
from factlocate.editors.neuron_attention import integrated_gradients as ig
from factlocate.editors.base import Computed, EditRequest, EditResult, Editor, HParams as BaseHParams, edit
from factlocate.editors.common import check_layers
from factlocate.errors import FactlocateError
from factlocate.forward import control

NAME = "kn"


@dataclass
class HParams(BaseHParams):
    EDITOR = NAME

    steps: int = 20
    batch_size: int = 20
    adaptive_threshold: float = 0.2
    p: float = 0.4
    refine: bool = False
    edit_scale: float = 2.0  # multiple of the embeddings added and subtracted
    layers: list[int] | None = None  # None: every layer
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise FactlocateError(f"steps must be a positive integer, got {self.steps!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise FactlocateError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not 0 < self.adaptive_threshold < 1:
            raise FactlocateError(f"adaptive_threshold must be in (0, 1), got {self.adaptive_threshold}")
        if not 0 <= self.p <= 1:
            raise FactlocateError(f"p must be in [0, 1], got {self.p}")
        if self.layers is not None and not self.layers:
            raise FactlocateError("layers is empty: give a list of layers, or null for all")


@torch.no_grad()
def _top1(model, ids: list[int]) -> int:
    resid = control.run(model, tokens.to_tensor(model, ids))
    return int(control.unembed(model, resid[:, -1])[0].argmax())


def compute_edit(model, requests, hparams: HParams, progress: bool = True, **options) -> EditResult:
    """Select knowledge neurons for each request's true answer and rewrite their output rows."""
    layers = check_layers(model, hparams.layers) if hparams.layers else list(range(arch.n_layers(model)))

    def compute(requests: list[EditRequest]) -> Computed:
        torch.manual_seed(hparams.seed)
        return _compute(model, requests, hparams, layers, progress)

    return edit(NAME, model, requests, hparams, compute, options)


def _compute(model, requests: list[EditRequest], hparams: HParams, layers: list[int], progress: bool) -> Computed:
    embed = arch.hf_model(model).get_input_embeddings().weight.detach()
    updates: dict[int, torch.Tensor] = {}
    selected = []
    for r in requests:
        ids = tokens.encode(model, r.text)
        top1 = _top1(model, ids)
        truth = tokens.encode_target(model, r.target_true)[0] if r.target_true else top1
        scores = ig.neuron_attributions(
            model, ids, truth, hparams.steps, hparams.batch_size, layers, progress=progress
        )
        neurons = ig.coarse_neurons(scores, hparams.adaptive_threshold)
        if hparams.refine:
            neurons = ig.refine([neurons], hparams.p)
        neurons = [(layers[row], i) for row, i in neurons]
        selected.append(neurons)
        new = tokens.encode_target(model, r.target_new)[0]
        change = hparams.edit_scale * (embed[new] - embed[top1]).float()
        for layer, i in neurons:
            if layer not in updates:
                updates[layer] = torch.zeros_like(arch.mlp_out_weight(model, layer), dtype=torch.float32)
            updates[layer][i] += change
    deltas = [
        WeightDelta(arch.mlp_out_name(model, layer), arch.to_storage(model, upd, layer))
        for layer, upd in sorted(updates.items())
    ]
    return Computed(deltas, {"neurons": selected})


EDITOR = Editor(NAME, HParams, compute_edit, batched=False)
