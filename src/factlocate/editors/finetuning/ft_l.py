"""FT+L: fine-tuning with an L-infinity constraint (ROME's FT+L baseline).

As FT, but after every Adam step each weight of the tuned module is clamped to
its original value +- eps (`norm_constraint`): gpt2-xl layer 0, eps 5e-4;
gpt-j layer 0, eps 5e-5.
"""
from __future__ import annotations

from dataclasses import dataclass

from factlocate.editors.finetuning import finetune
from factlocate.editors.base import Editor

NAME = "ft-l"


@dataclass
class HParams(finetune.FinetuneHParams):
    EDITOR = NAME

    norm_constraint: float | None = 5e-4

    def __post_init__(self):
        self.require(self.norm_constraint is not None, "ft-l needs a positive norm_constraint (eps); use ft for none")
        super().__post_init__()


def compute_edit(model, requests, hparams: HParams, progress: bool = True, **options):
    """Fine-tune the MLP output module of `hparams.layer`, clamped to +-eps."""
    return finetune.run(NAME, model, requests, hparams, lambda m: finetune.mlp_out_names(m, hparams.layer),
                        progress, options)


EDITOR = Editor(NAME, HParams, compute_edit)
