"""Corruptions: what a trace does to the input so that the model loses the fact.

A corruption is an object (subclass of `Corruption`) that owns three things, and the engines
(naive, batched, attribution patching) ask it for each, building nothing themselves:

* its **hook**: `corruption.hook(prep, rs, rows=S)` returns the `(hook name, fn)` pair that corrupts
  rows of the batch (the subject's token embeddings by default; `span` chooses the positions);
* its **readout contrast**: `corruption.contrast(model, prep)`, the token each corrupted row's
  logit difference is taken against (metric `logit_diff`);
* its **description**: `corruption.describe()`, saved with every result.

The registry below names the corruptions the `--corrupt` flag offers. A new corruption is one
file with a `Corruption` subclass and a `for_prompt(setting)` class method, plus one line here:

    CORRUPTIONS["mine"] = "factlocate.tracing.mine:MyCorruption"

Shipped: `noise` (Gaussian, uniform, multivariate or Student-t noise on the subject embeddings,
the paper's; `factlocate.tracing.noise.Noise`) and `str` (symmetric token replacement, Zhang &
Nanda 2023; `factlocate.tracing.swap.SubjectSwap`).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from factlocate import arch
from factlocate.errors import FactlocateError
from factlocate.hooks.corruption import CorruptEmbedding

if TYPE_CHECKING:
    from factlocate.tracing.core import Prepared, RunSpec

# --corrupt name -> "module:class"; each class subclasses Corruption and defines for_prompt.
CORRUPTIONS: dict[str, str] = {
    "noise": "factlocate.tracing.noise:Noise",
    "str": "factlocate.tracing.swap:SubjectSwap",
}


def names() -> tuple[str, ...]:
    return tuple(CORRUPTIONS)


def get(name: str) -> type["Corruption"]:
    """The corruption class registered as `name`."""
    if name not in CORRUPTIONS:
        raise FactlocateError(f"unknown corruption {name!r}: use {', '.join(CORRUPTIONS)}")
    module, _, cls = CORRUPTIONS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


@dataclass
class Setting:
    """What a corruption may read to set itself up for one prompt."""

    model: object
    prompt: str
    subject: str
    run: "RunSpec"
    resolved: "Corruption | None" = None  # a corruption already measured for the fact set (noise: sigma)
    partners: list[dict] | None = None  # the fact set (STR draws partner subjects from it)
    relation: str | None = None


def for_prompt(setting: Setting) -> "Corruption":
    """The corruption `setting.run.corrupt` names, set up for one prompt."""
    return get(setting.run.corrupt).for_prompt(setting)


class Corruption:
    """Base of every corruption. Subclasses define `draw` (and may override `span`, `contrast`, `describe`).

    `draw(rs, rows, n_tokens, d_model)` returns the values written into (`replace`) or added to the
    embeddings at `span(prep)` for `rows` corrupted rows, from the numpy RandomState `rs`: the engines
    seed it with `RandomState(run.seed)`, so every engine corrupts row s the same way.
    """

    NAME: ClassVar[str] = ""
    replace: bool = False

    @classmethod
    def for_prompt(cls, setting: Setting) -> "Corruption":
        raise NotImplementedError

    def draw(self, rs: np.random.RandomState, rows: int, n_tokens: int, d_model: int) -> torch.Tensor:
        raise NotImplementedError

    def span(self, prep: "Prepared") -> tuple[int, int]:
        """The token positions [start, end) this corruption changes: the subject's, unless overridden."""
        return prep.subject_range

    def hook(self, prep: "Prepared", rs: np.random.RandomState, *, rows: int | None = None,
             first_row: int = 0) -> tuple[str, Callable]:
        """The hook that corrupts rows `first_row:` of a batch.

        With `rows` the values are drawn now (one block for that many rows); without, they are drawn
        each time the hook fires, for as many rows as the batch has then (the naive engine's way).
        """
        start, end = self.span(prep)
        if rows is None:
            values = lambda r, n, d: self.draw(rs, r, n, d)  # noqa: E731
        else:
            values = self.draw(rs, rows, end - start, int(prep.d_model))
        return arch.HOOK_EMBED, CorruptEmbedding(values, start, end, self.replace, first_row=first_row)

    def contrast(self, model, prep: "Prepared") -> torch.Tensor:
        """Per corrupted row, the token `logit_diff` subtracts: the corrupted run's top token other than the
        answer (the engines' first draw), the same for every row."""
        from factlocate.tracing.core import last_logits
        from factlocate.tracing.readout import top_other

        S = prep.samples
        hook = self.hook(prep, np.random.RandomState(prep.seed), rows=S)
        logits = last_logits(model, prep.ids_tensor(S), hooks=[hook])
        return torch.full((S,), top_other(logits, prep.answer_id), dtype=torch.long)

    def describe(self) -> dict:
        return {"spec": self.NAME, "family": self.NAME, "level": None, "sigma": None, "replace": self.replace}
