"""FT: unconstrained fine-tuning of one layer's MLP output module (ROME's FT baseline).

Adam (lr 5e-4, up to 25 steps, early stop at loss 1e-2) on the MLP output matrix
and its bias at `layer`: gpt2-xl layer 1, gpt-j layer 21. The loss scores all
target tokens at the last prompt position, as the original code does;
`teacher_forced: true` scores them teacher-forced instead. See `finetune`.
"""
from __future__ import annotations

from dataclasses import dataclass

from factlocate.editors.finetuning import finetune
from factlocate.editors.base import Editor

NAME = "ft"


@dataclass
class HParams(finetune.FinetuneHParams):
    EDITOR = NAME


def compute_edit(model, requests, hparams: HParams, progress: bool = True, **options):
    """Fine-tune the MLP output module of `hparams.layer` towards `requests`."""
    return finetune.run(NAME, model, requests, hparams, lambda m: finetune.mlp_out_names(m, hparams.layer),
                        progress, options)


EDITOR = Editor(NAME, HParams, compute_edit)
