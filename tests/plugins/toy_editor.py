"""A stateful toy editor, written only against the contract in `factlocate.editors.base`.

Each call writes a rank-one delta into one MLP output matrix, scaled by how many batches this editor has
written before: that count is its `State`, which the sequential protocol carries, saves and reloads.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from factlocate import arch
from factlocate.deltas import WeightDelta
from factlocate.editors.base import Computed, Editor, HParams as BaseHParams, edit

NAME = "toy-stateful"


@dataclass
class HParams(BaseHParams):
    EDITOR = NAME

    layer: int = 1
    scale: float = 0.01


@dataclass
class State:
    batches: torch.Tensor  # [1]: batches written so far

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"batches": self.batches}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "State":
        return cls(tensors["batches"])


def compute_edit(model, requests, hparams: HParams, progress: bool = True, state: State | None = None, **inputs):
    done = 0 if state is None else int(state.batches.item())

    def compute(requests) -> Computed:
        g = torch.Generator().manual_seed(1000 * done + len(requests))
        u = torch.randn(int(model.cfg.d_mlp), 1, generator=g)
        v = torch.randn(1, int(model.cfg.d_model), generator=g)
        update = arch.to_storage(model, hparams.scale * (done + 1) * (u @ v), hparams.layer)
        return Computed([WeightDelta(arch.mlp_out_name(model, hparams.layer), update)],
                        {"state": State(torch.tensor([done + 1.0]))})

    return edit(NAME, model, requests, hparams, compute, inputs)


EDITOR = Editor(NAME, HParams, compute_edit, inputs=("state",), State=State)
