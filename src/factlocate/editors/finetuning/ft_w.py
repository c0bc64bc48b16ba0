"""FT-W: fine-tuning of a whole block with a weight-decay regulariser (MEMIT's baseline).

Every parameter of block `layer` (GPT-J: block 21) is tuned with Adam, lr 5e-4,
up to 25 steps, early stop at loss 1e-2. The regulariser is a decay of the edit
itself: the loss gets `weight_decay * sum_W ||W - W_orig||_2^2` over the tuned
parameters (weight_decay 5e-4, as tuned in the MEMIT paper for 10,000 edits).
The released MEMIT code passes its weight decay to torch's Adam (an L2 pull
towards zero weights, scaled away by Adam's normalisation), so it has next to no
effect there; this module applies the penalty the paper describes instead.
"""
from __future__ import annotations

from dataclasses import dataclass

from factlocate import arch
from factlocate.editors.finetuning import finetune
from factlocate.editors.base import Editor

NAME = "ft-w"


@dataclass
class HParams(finetune.FinetuneHParams):
    EDITOR = NAME

    weight_decay: float = 5e-4


def compute_edit(model, requests, hparams: HParams, progress: bool = True, **options):
    """Fine-tune every parameter of block `hparams.layer` with the delta penalty."""
    return finetune.run(NAME, model, requests, hparams, lambda m: arch.block_param_names(m, hparams.layer),
                        progress, options)


EDITOR = Editor(NAME, HParams, compute_edit)
