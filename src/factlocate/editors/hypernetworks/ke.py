"""KE, Knowledge Editor (De Cao et al. 2021), as an editor: a conditioning network reads the edit and
rescales and shifts its fine-tuning gradient into the update of the MLP matrices of the last three blocks
(`ke_net`, `hypernet`).

    factlocate train-editor --editor ke --model smollm2-135m --data cf:counterfact-train.json
    factlocate edit --editor ke-cf --model smollm2-135m --subject ... --prompt ... --target ...

Variants and checkpoints: `hyper_editor`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from factlocate import arch, tokens
from factlocate.editors.hypernetworks import hyper_editor, hypernet
from factlocate.editors.base import EditResult, Editor
from factlocate.editors.hypernetworks.ke_net import KeNet

NAME = "ke"


@dataclass
class HParams(hyper_editor.TrainedHParams):
    EDITOR = NAME
    NETWORK = ("hidden", "lstm_hidden", "condition", "max_scale")

    hidden: int = 128  # each matrix's conditioned network
    lstm_hidden: int = 256
    condition: int = 1024
    max_scale: float = 1.0

    def __post_init__(self):
        self.check_training()
        for name in ("hidden", "lstm_hidden", "condition"):
            self.require(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, f"{name} must be >= 1")
        self.require(self.max_scale > 0, "max_scale must be positive")


def network(model, hp, inners) -> KeNet:
    torch.manual_seed(hp.seed)
    embedding = arch.hf_model(model).get_input_embeddings().weight
    return KeNet(inners, embedding, hp.hidden, hp.lstm_hidden, hp.condition, hp.max_scale)


def updates(net: KeNet, model, inners, ex: hypernet.Example) -> dict[str, torch.Tensor]:
    """ΔM per matrix for one example (differentiable in the network): conditioned on the edit's tokens."""
    grads = hypernet.full_gradient(hypernet.edit_gradient(model, inners, ex.prompt, ex.target))
    ids = torch.tensor(tokens.encode(model, ex.prompt) + tokens.encode_target(model, ex.target))
    return net(ids, grads)


def compute_edit(model, requests, hparams: HParams, progress: bool = True, **options) -> EditResult:
    name = hyper_editor.variant_name(NAME, hparams.data)
    return hyper_editor.edit_with(name, model, requests, hparams, network, updates, options)


def train(model, hparams: HParams, data: str, out: str | Path, progress: bool = True) -> dict:
    return hyper_editor.train_with(NAME, model, hparams, network, updates, data, out, progress)


EDITOR = Editor(NAME, HParams, compute_edit, train=train, batched=False)
