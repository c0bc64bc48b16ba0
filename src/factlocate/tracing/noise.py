"""Noise specs for corrupting the subject's token embeddings.

A spec is parsed once (`parse_noise`) and then resolved against a model
(`resolve_noise`), which measures whatever the spec needs: the embedding
standard deviation for `sK`, the embedding mean and covariance for `m` and `tD`.

Spec grammar (as in the original `causal_trace.py --noise_level`):

    0.1    Gaussian, level 0.1 (standard normal draws times 0.1)
    s3     Gaussian, level 3 * sigma; sigma = std over all elements of the
           token embeddings (`hook_embed`) of the subjects of a fact set, each
           subject tokenised on its own, BOS excluded. `s` alone is 1 * sigma.
    u0.5   uniform in (-0.5, 0.5)
    m      multivariate Gaussian with the mean and covariance of the token
           embeddings of a corpus (default: the shipped known-facts prompts)
    t3     Student-t with 3 degrees of freedom, shaped like `m` and scaled to
           its variance (the original's `collect_embedding_tdist`)

`replace=True` replaces the subject embeddings by the noise instead of adding it.

Draws always come from `numpy.random.RandomState`, in float64, exactly as the
original (`rs.randn(rows, n_subject_tokens, d_model)` or `rs.uniform(-1, 1, ...)`),
then go through the level or transform, and are written into the float32
embeddings in place.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import torch
from jaxtyping import Float

from factlocate import arch, tokens
from factlocate.errors import FactlocateError
from factlocate.forward import Capture, control
from factlocate.tracing.corruption import Corruption, Setting

_NUMBER = r"(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?"
T_SAMPLES = 1000  # the original draws 1000 chi-square factors once (RandomState(2))


@dataclass(frozen=True)
class NoiseSpec:
    """A parsed noise spec; `resolve_noise` turns it into a `Noise` for one model."""

    text: str
    family: str  # gaussian | uniform | mvg | student
    factor: float = 1.0  # level, or multiple of sigma for `sK`
    relative: bool = False  # True for `sK`: factor times the measured sigma
    degrees: float | None = None  # Student-t degrees of freedom


def parse_noise(spec: str | float | int) -> NoiseSpec:
    """Parse a noise spec; raise FactlocateError naming the grammar if it does not parse."""
    text = str(spec).strip()
    hint = "use a number (0.1), sK (s3), uX (u0.5), m, or tD (t3)"
    if isinstance(spec, (int, float)) or re.fullmatch(_NUMBER, text):
        level = float(text)
        if not math.isfinite(level) or level < 0:
            raise FactlocateError(f"noise level {text!r} must be a finite number >= 0; {hint}")
        return NoiseSpec(text, "gaussian", level)
    if text == "s" or re.fullmatch("s" + _NUMBER, text):
        return NoiseSpec(text, "gaussian", float(text[1:]) if len(text) > 1 else 1.0, relative=True)
    if re.fullmatch("u" + _NUMBER, text):
        return NoiseSpec(text, "uniform", float(text[1:]))
    if text == "m":
        return NoiseSpec(text, "mvg")
    if re.fullmatch("t" + _NUMBER, text):
        degrees = float(text[1:])
        if degrees <= 2:
            raise FactlocateError(f"noise {text!r}: Student-t needs more than 2 degrees of freedom (e.g. t3)")
        return NoiseSpec(text, "student", degrees=degrees)
    raise FactlocateError(f"cannot parse noise spec {text!r}: {hint}")


@dataclass
class Noise(Corruption):
    """A noise spec resolved for one model: draws embedding noise from a RandomState (the `noise` corruption)."""

    NAME = "noise"

    spec: NoiseSpec
    level: float | None = None  # the absolute level for gaussian/uniform
    sigma: float | None = None  # the measured sigma, for `sK`
    replace: bool = False
    mean: torch.Tensor | None = field(default=None, repr=False)  # [d_model] float64, for m/t
    weight: torch.Tensor | None = field(default=None, repr=False)  # [d_model, d_model] float64
    t_factors: torch.Tensor | None = field(default=None, repr=False)  # [1000] float64

    @classmethod
    def for_prompt(cls, setting: Setting) -> "Noise":
        """`setting.resolved` (a fact set measures sigma once), else `run.noise` measured on the model now."""
        run, noise = setting.run, setting.resolved
        if noise is None:
            return resolve_noise(setting.model, run.noise, replace=run.replace)
        if run.replace and not noise.replace:
            return dataclasses.replace(noise, replace=True)
        return noise

    def draw(self, rs: np.random.RandomState, rows: int, n_tokens: int, d_model: int) -> Float[torch.Tensor, "rows tok d_model"]:
        """The next noise block from `rs`, float64, as the original's `noise_fn(prng(...))`."""
        if self.spec.family == "uniform":
            raw = torch.from_numpy(rs.uniform(-1, 1, (rows, n_tokens, d_model)))
        else:
            raw = torch.from_numpy(rs.randn(rows, n_tokens, d_model))
        if self.spec.family in ("gaussian", "uniform"):
            return self.level * raw
        gauss = torch.nn.functional.linear(raw, self.weight, self.mean)
        if self.spec.family == "mvg":
            return gauss
        size = gauss.shape[:-1].numel()
        if size > len(self.t_factors):
            raise FactlocateError(
                f"Student-t noise has {len(self.t_factors)} fixed factors but needs {size}: "
                "use fewer samples or a shorter subject"
            )
        return self.t_factors[:size].reshape(gauss.shape[:-1] + (1,)) * gauss

    def describe(self) -> dict:
        """JSON-able description, saved with every result."""
        return {"spec": self.spec.text, "family": self.spec.family, "level": self.level,
                "sigma": self.sigma, "replace": self.replace, "degrees": self.spec.degrees}


def default_subjects() -> list[str]:
    """Subjects of the shipped known-facts file (the default fact set for sigma)."""
    return [r["subject"] for r in _known_facts()]


def _known_facts() -> list[dict]:
    with resources.files("factlocate.data").joinpath("known_1000.json").open(encoding="utf-8") as f:
        return json.load(f)


@torch.no_grad()
def token_embeddings(model, texts: list[str]) -> Float[torch.Tensor, "n_tokens d_model"]:
    """`hook_embed` output of every token of `texts`, each text tokenised alone, BOS excluded."""
    ids = sorted({i for t in texts for i in tokens.encode(model, t, bos=False)})
    index = {i: k for k, i in enumerate(ids)}
    table = _embed_ids(model, ids)  # one row per distinct id
    rows = [index[i] for t in texts for i in tokens.encode(model, t, bos=False)]
    return table[torch.tensor(rows, device=table.device)]


@torch.no_grad()
def _embed_ids(model, ids: list[int]) -> Float[torch.Tensor, "n d_model"]:
    """`hook_embed` of each id (position-independent), captured on a forward stopped before block 0."""
    batch = torch.tensor(ids, dtype=torch.long)[:, None]  # one token per row
    capture = Capture([arch.HOOK_EMBED], clone=True)
    control.run(model, batch, hooks=capture.hooks, stop_at=0)
    return capture[arch.HOOK_EMBED][:, 0]


def embedding_sigma(model, subjects: list[str] | None = None) -> float:
    """The original's `collect_embedding_std`: std (unbiased, float32) over subject embeddings."""
    emb = token_embeddings(model, subjects if subjects is not None else default_subjects())
    return float(emb.float().std().item())


def embedding_gaussian(model, texts: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and generator weight of a Gaussian fitted to corpus token embeddings (float64).

    As the original `make_generator_transform`: weight = sqrt(s)[None, :] * v with
    `_, s, v = cov.svd()`, so `linear(z, weight, mean)` has the fitted covariance.
    Default corpus: the known-facts prompts with their answers (the original used
    1000 wikitext-103 samples, which are not shipped).
    """
    if texts is None:
        texts = [f"{r['prompt']} {r['attribute']}." for r in _known_facts()]
    emb = token_embeddings(model, texts).double()
    mean = emb.mean(0)
    centred = emb - mean
    cov = centred.T @ centred / (len(emb) - 1)
    _, s, v = cov.svd()
    return mean, s.sqrt()[None, :] * v


def resolve_noise(model, spec: str | float | NoiseSpec, *, replace: bool = False,
                  subjects: list[str] | None = None, sigma: float | None = None,
                  corpus: list[str] | None = None) -> Noise:
    """Measure what `spec` needs on `model` (sigma, mean/covariance) and return a `Noise`.

    Pass `sigma` to reuse a measured value (a fact-set run measures it once).
    """
    spec = spec if isinstance(spec, NoiseSpec) else parse_noise(spec)
    if spec.family in ("gaussian", "uniform"):
        if spec.relative:
            sigma = embedding_sigma(model, subjects) if sigma is None else float(sigma)
            return Noise(spec, level=spec.factor * sigma, sigma=sigma, replace=replace)
        return Noise(spec, level=spec.factor, replace=replace)
    mean, weight = embedding_gaussian(model, corpus)
    noise = Noise(spec, replace=replace, mean=mean, weight=weight)
    if spec.family == "student":
        u = torch.from_numpy(np.random.RandomState(2).chisquare(df=spec.degrees, size=T_SAMPLES))
        noise.t_factors = ((spec.degrees - 2) / u).sqrt()
    return noise
