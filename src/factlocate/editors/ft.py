"""FT: unconstrained fine-tuning of one layer's MLP output module (ROME's FT baseline).

Adam (lr 5e-4, up to 25 steps, early stop at loss 1e-2) on the MLP output matrix
and its bias at `layer`: gpt2-xl layer 1, gpt-j layer 21. The loss scores all
target tokens at the last prompt position, as the original code does;
`teacher_forced: true` scores them teacher-forced instead. See `finetune`.
"""
from __future__ import annotations

from dataclasses import dataclass

from factlocate import arch
from factlocate.editors import finetune
from factlocate.editors.common import check_options, check_requests

NAME = "ft"


@dataclass
class HParams(finetune.FinetuneHParams):
    layer: int = 1


def compute_edit(model, requests, hparams: HParams, progress: bool = True, **options):
    """Fine-tune the MLP output module of `hparams.layer` towards `requests`."""
    return finetune_mlp_out(NAME, model, requests, hparams, progress, options)


def finetune_mlp_out(name: str, model, requests, hparams, progress: bool, options: dict):
    """The FT family's edit: fine-tune the weight and bias of one layer's MLP output module."""
    check_options(name, options)
    requests = check_requests(requests)
    arch.check_layer(model, hparams.layer)
    names = finetune.mlp_out_names(model, hparams.layer)
    return finetune.run(name, model, requests, hparams, names, progress=progress)
