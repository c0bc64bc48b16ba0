"""`TraceResult`: one causal-trace grid of one prompt, with the specs that produced it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from factlocate.io import read_json, write_json
from factlocate.tracing.core import GridSpec, RunSpec


def rows_before_subject(positions, subject_range) -> np.ndarray:
    """[n_positions] bool: which traced positions come before the subject (restoring them changes nothing)."""
    return np.array([t < subject_range[0] for t in positions], dtype=bool)


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
    positions: list[int]
    prompt: str
    subject: str
    model: str  # the model's spec (`identity(model).spec`)
    grid: GridSpec
    run: RunSpec
    noise: dict = field(default_factory=dict)  # the resolved corruption: spec, family, level, sigma, partners ...
    seconds: float = 0.0
    exact: np.ndarray | None = None  # [n_positions, n_layers] bool: cells holding exact values (None: all)
    estimates: np.ndarray | None = None  # AtP's estimated scores (method atp or atp+verify)

    # The specs' fields, read through the result.
    kind = property(lambda self: self.grid.kind)
    window = property(lambda self: self.grid.window)
    sever = property(lambda self: self.grid.sever)
    noise_draws = property(lambda self: self.grid.noise_draws)
    samples = property(lambda self: self.run.samples)
    seed = property(lambda self: self.run.seed)
    engine = property(lambda self: self.run.engine)
    method = property(lambda self: self.run.method)
    metric = property(lambda self: self.run.metric)
    corrupt = property(lambda self: self.run.corrupt)

    @property
    def exact_mask(self) -> np.ndarray:
        """Which cells are exact values rather than AtP estimates."""
        return np.ones(self.scores.shape, dtype=bool) if self.exact is None else np.asarray(self.exact, dtype=bool)

    @property
    def before_subject(self) -> np.ndarray:
        """[n_positions] bool: rows before the subject, where restoring changes nothing."""
        return rows_before_subject(self.positions, self.subject_range)

    @property
    def noise_level(self) -> float | None:
        """The absolute noise level for Gaussian and uniform noise (None for m and tD)."""
        return self.noise.get("level")

    @property
    def n_layers(self) -> int:
        return int(self.scores.shape[1])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scores"] = np.asarray(self.scores).tolist()
        d["subject_range"] = list(self.subject_range)
        for key in ("exact", "estimates"):
            d[key] = None if getattr(self, key) is None else np.asarray(getattr(self, key)).tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TraceResult":
        d = dict(d)
        d["scores"] = np.asarray(d["scores"], dtype=np.float64)
        d["subject_range"] = tuple(d["subject_range"])
        d["grid"], d["run"] = GridSpec(**d["grid"]), RunSpec.from_dict(d["run"])
        if d.get("exact") is not None:
            d["exact"] = np.asarray(d["exact"], dtype=bool)
        if d.get("estimates") is not None:
            d["estimates"] = np.asarray(d["estimates"], dtype=np.float64)
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
