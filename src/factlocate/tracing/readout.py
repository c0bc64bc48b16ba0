"""What a trace reads at the last position: the metric m of each run.

    prob        p(answer), the paper's and the default
    logprob     log p(answer)
    logit_diff  logit(answer) - logit(contrast): the contrast is the corrupted run's top token
                (noise), or, per corrupted row, the answer of the subject swapped in (STR)

Every engine (naive, batched, attribution patching) reports the mean of m over the
corrupted rows; the clean score is m on the clean run (with the first contrast).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int

from factlocate.errors import FactlocateError

METRICS = ("prob", "logprob", "logit_diff")


@dataclass
class Readout:
    """m for rows of last-position logits; row r of a batch belongs to corrupted sample r % samples."""

    metric: str
    answer: int
    contrast: Int[torch.Tensor, "samples"] | None = None  # logit_diff only

    def __post_init__(self):
        if self.metric not in METRICS:
            raise FactlocateError(f"unknown metric {self.metric!r}: use prob, logprob or logit_diff")
        if self.metric == "logit_diff" and self.contrast is None:
            raise FactlocateError("logit_diff needs a contrast token")

    def __call__(self, logits: Float[torch.Tensor, "rows vocab"], samples: Int[torch.Tensor, "rows"] | None = None):
        """m of every row (at least float32; differentiable)."""
        logits = _wide(logits)
        if self.metric == "prob":
            return torch.softmax(logits, dim=-1)[:, self.answer]
        if self.metric == "logprob":
            return torch.log_softmax(logits, dim=-1)[:, self.answer]
        if samples is None:
            samples = torch.zeros(len(logits), dtype=torch.long)
        contrast = self.contrast.to(logits.device)[samples.to(logits.device)]
        rows = torch.arange(len(logits), device=logits.device)
        return logits[:, self.answer] - logits[rows, contrast]

    def mean(self, logits: torch.Tensor, samples: torch.Tensor | None = None) -> float:
        """The mean of m over the rows (for prob: the mean distribution's p(answer), as the original)."""
        if self.metric == "prob":
            return float(torch.softmax(_wide(logits), dim=-1).mean(dim=0)[self.answer])
        return float(self(logits, samples).mean())


def _wide(logits: torch.Tensor) -> torch.Tensor:
    """float32, or float64 for a float64 model."""
    return logits if logits.dtype == torch.float64 else logits.float()


def top_other(logits: Float[torch.Tensor, "rows vocab"], answer: int) -> int:
    """The most likely token other than `answer` under the rows' mean distribution (the noise contrast)."""
    probs = torch.softmax(logits.float(), dim=-1).mean(0)
    probs[answer] = -1.0
    return int(probs.argmax())
