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

from factlocate.editors.hypernetworks import hyper_editor, hypernet
from factlocate.editors.base import EditResult, Editor
from factlocate.editors.hypernetworks.mend_net import MendNet

NAME = "mend"


@dataclass
class HParams(hyper_editor.TrainedHParams):
    EDITOR = NAME
    NETWORK = ("rank", "n_hidden", "edit_lr")

    rank: int = 1920
    n_hidden: int = 1
    edit_lr: float = 1e-4  # α_p's initial value
    lr: float = 1e-6  # the transform's learning rate (reference: 1e-6)
    lr_lr: float = 1e-4  # α_p's learning rate

    def __post_init__(self):
        self.check_training()
        self.require(isinstance(self.rank, int) and self.rank >= 1, "rank must be >= 1")
        self.require(self.n_hidden >= 0, "n_hidden must be >= 0")
        for name in ("edit_lr", "lr_lr"):
            self.require(getattr(self, name) > 0, f"{name} must be positive")

    def meta_lr(self) -> float:
        return self.lr_lr


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
    return hyper_editor.train_with(NAME, model, hparams, network, updates, data, out, progress)


EDITOR = Editor(NAME, HParams, compute_edit, train=train, batched=False)
