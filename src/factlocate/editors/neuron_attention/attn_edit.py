"""AttnEdit (ROME appendix I): constrained fine-tuning of one layer's attention Q, K, V.

The Q, K and V weights of every head at `layer` (GPT-2: the fused `c_attn`
weight and bias; GPT-J, Llama, Gemma: q_proj, k_proj, v_proj, with their biases
where a model has them) are tuned with Adam and clamped to original +- eps after
every step: gpt2-xl layer 33, eps 1e-3, lr 1e-3, 25 steps. For other models the
layer is the centre of high attention causal effect at the last token (see the
comments in configs/attn-edit).
"""
from __future__ import annotations

from dataclasses import dataclass

from factlocate import arch
from factlocate.editors.finetuning import finetune
from factlocate.editors.base import Editor

NAME = "attn-edit"


@dataclass
class HParams(finetune.FinetuneHParams):
    EDITOR = NAME

    lr: float = 1e-3
    norm_constraint: float | None = 1e-3

    def __post_init__(self):
        self.require(self.norm_constraint is not None, "attn-edit needs a positive norm_constraint (eps)")
        super().__post_init__()


def compute_edit(model, requests, hparams: HParams, progress: bool = True, **options):
    """Fine-tune W_Q, W_K, W_V of `hparams.layer`, clamped to +-eps."""
    return finetune.run(NAME, model, requests, hparams, lambda m: arch.attn_qkv_names(m, hparams.layer),
                        progress, options)


EDITOR = Editor(NAME, HParams, compute_edit)
