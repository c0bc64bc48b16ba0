"""FT+L: fine-tuning with an L-infinity constraint (ROME's FT+L baseline).

As FT, but after every Adam step each weight of the tuned module is clamped to
its original value +- eps (`norm_constraint`): gpt2-xl layer 0, eps 5e-4;
gpt-j layer 0, eps 5e-5.
"""
from __future__ import annotations

from dataclasses import dataclass

from factlocate.editors import finetune
from factlocate.editors.ft import finetune_mlp_out
from factlocate.errors import FactlocateError

NAME = "ft-l"


@dataclass
class HParams(finetune.FinetuneHParams):
    layer: int = 0
    norm_constraint: float | None = 5e-4

    def __post_init__(self):
        if self.norm_constraint is None:
            raise FactlocateError("ft-l needs a positive norm_constraint (eps); use ft for none")
        super().__post_init__()


def compute_edit(model, requests, hparams: HParams, progress: bool = True, **options):
    """Fine-tune the MLP output module of `hparams.layer`, clamped to +-eps."""
    return finetune_mlp_out(NAME, model, requests, hparams, progress, options)
