"""MEND (Mitchell et al. 2021) as an editor: a trained gradient transform (`mend_net`) turns one edit's
fine-tuning gradient into the update of the MLP matrices of the last three blocks (`hypernet`).

    factlocate train-editor --editor mend --model smollm2-135m --data cf:counterfact-train.json
    factlocate edit --editor mend-cf --model smollm2-135m --subject ... --prompt ... --target ...

Variants and checkpoints: `hyper_editor`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from factlocate.editors import hyper_editor, hypernet, hypertrain
from factlocate.editors.base import EditResult, HParams as BaseHParams
from factlocate.editors.mend_net import MendNet

NAME = "mend"


@dataclass
class HParams(BaseHParams):
    EDITOR = NAME

    data: str = "wikitext"  # what the network is trained on: wikitext, cf or zsre
    checkpoint: str | None = None  # default: the variant's folder in the cache
    n_blocks: int = 3
    rank: int = 1920
    n_hidden: int = 1
    edit_lr: float = 1e-4  # α_p's initial value
    lr: float = 1e-6  # the transform's learning rate (reference: 1e-6)
    lr_lr: float = 1e-4  # α_p's learning rate
    cedit: float = 0.1
    cloc: float = 1.0
    steps: int = 1000
    batch: int = 4
    val_every: int = 50
    val_size: int = 20
    patience: int = 5
    checkpoint_every: int = 25
    seed: int = 0

    def __post_init__(self):
        need = self.require
        need(self.data.partition(":")[0] in hypertrain.DATA_KINDS, f"data must be one of {hypertrain.DATA_KINDS}")
        for name in ("n_blocks", "rank", "steps", "batch", "val_every", "val_size", "patience",
                     "checkpoint_every"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, f"{name} must be >= 1")
        need(self.n_hidden >= 0, "n_hidden must be >= 0")
        for name in ("edit_lr", "lr", "lr_lr"):
            need(getattr(self, name) > 0, f"{name} must be positive")


def network(model, hp, inners) -> MendNet:
    torch.manual_seed(hp.seed)
    return MendNet(inners, hp.rank, hp.n_hidden, hp.edit_lr)


def updates(net: MendNet, model, inners, ex: hypernet.Example) -> dict[str, torch.Tensor]:
    """ΔM per matrix for one example (differentiable in the network)."""
    return net(hypernet.edit_gradient(model, inners, ex.prompt, ex.target))


def compute_edit(model, requests, hparams: HParams, progress: bool = True, **options) -> EditResult:
    name = hyper_editor.variant_name(NAME, hparams.data)
    return hyper_editor.edit_with(name, model, requests, hparams, network, updates, options)


def train(model, hparams: HParams, data: str, out: str | Path, progress: bool = True) -> dict:
    """Train MEND on `data` (cf|zsre|wikitext with :PATH) into `out` (resumable)."""
    params = {"n_blocks": hparams.n_blocks, "rank": hparams.rank, "n_hidden": hparams.n_hidden,
              "edit_lr": hparams.edit_lr}
    return hyper_editor.train_with(NAME, model, hparams, network, updates, params, data, out, progress)
