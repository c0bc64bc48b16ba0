"""A corruption outside the subject's embeddings, written only against `factlocate.tracing.corruption`:
Gaussian noise on the token right after the subject (the relation's first token)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from factlocate.tracing.corruption import Corruption, Setting


@dataclass
class NextTokenNoise(Corruption):
    NAME = "next-token"

    level: float = 1.0

    @classmethod
    def for_prompt(cls, setting: Setting) -> "NextTokenNoise":
        return cls()

    def span(self, prep) -> tuple[int, int]:
        end = prep.subject_range[1]
        return end, end + 1

    def draw(self, rs: np.random.RandomState, rows: int, n_tokens: int, d_model: int) -> torch.Tensor:
        return self.level * torch.from_numpy(rs.randn(rows, n_tokens, d_model))

    def describe(self) -> dict:
        return {"spec": self.NAME, "family": "gaussian", "level": self.level, "sigma": None, "replace": False}
