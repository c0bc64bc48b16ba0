"""`TraceResult`: one causal trace of one prompt, with every parameter that produced it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from factlocate.io import read_json, write_json


@dataclass
class TraceResult:
    """Scores of restoring each (token, layer) site of a corrupted run.

    `scores[i][l]` is the mean over corrupted rows of p(answer) at the last
    position when site (positions[i], l) is restored from the clean run
    (`positions` is every token unless a token range was asked for).
    """

    scores: np.ndarray  # [n_positions, n_layers]
    low_score: float  # corrupted, nothing restored
    high_score: float  # clean p(answer)
    answer: str
    answer_id: int
    input_ids: list[int]
    input_tokens: list[str]
    subject_range: tuple[int, int]  # [start, end) in token positions (BOS counted)
    kind: str  # hidden | mlp | attn
    window: int
    noise_level: float | None  # absolute level for gaussian/uniform noise
    noise: dict  # spec, family, sigma, replace, ...
    samples: int
    seed: int
    model: str
    prompt: str
    subject: str
    positions: list[int] = field(default_factory=list)
    sever: str | None = None  # mlp | attn for a severed trace
    noise_draws: str = "same"  # same | reference
    engine: str = "batched"
    seconds: float = 0.0

    @property
    def n_layers(self) -> int:
        return int(self.scores.shape[1])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scores"] = np.asarray(self.scores).tolist()
        d["subject_range"] = list(self.subject_range)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TraceResult":
        d = dict(d)
        d["scores"] = np.asarray(d["scores"], dtype=np.float64)
        d["subject_range"] = tuple(d["subject_range"])
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "TraceResult":
        return cls.from_dict(read_json(path))

    def row(self, position: int) -> np.ndarray:
        """Scores of token `position` over layers."""
        return self.scores[self.positions.index(position)]
