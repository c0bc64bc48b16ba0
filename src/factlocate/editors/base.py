"""The editor interface shared by ROME and every baseline.

An editor is a module under `factlocate.editors` that defines

    NAME: str
    HParams: a validated dataclass (see `load_hparams`)
    compute_edit(model, requests: list[EditRequest], hparams, **options) -> EditResult

`compute_edit` leaves the model's weights as it found them; the caller applies
the result's deltas (`result.apply(model)`, `result.revert(model)`, or
`with result.applied(model): ...`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from factlocate import deltas as deltas_mod
from factlocate.deltas import WeightDelta
from factlocate.errors import FactlocateError


@dataclass(frozen=True)
class EditRequest:
    """Rewrite `prompt.format(subject)` to continue with `target_new` (instead of `target_true`)."""

    prompt: str  # a template with one "{}" for the subject
    subject: str
    target_new: str
    target_true: str | None = None
    relation_id: str | None = None
    case_id: int | None = None

    def __post_init__(self):
        if "{}" not in self.prompt:
            raise FactlocateError(f"prompt template {self.prompt!r} has no '{{}}' for the subject")
        if not self.subject or not self.subject.strip():
            raise FactlocateError("the subject is empty")
        if not self.target_new or not self.target_new.strip():
            raise FactlocateError("the new target is empty")

    @property
    def text(self) -> str:
        return self.prompt.format(self.subject)

    @classmethod
    def from_text(cls, prompt: str, subject: str, target_new: str, **kw) -> "EditRequest":
        """Build a request from a filled prompt ("Paris is the capital of") or a template."""
        if "{}" not in prompt:
            if subject not in prompt:
                raise FactlocateError(f"subject {subject!r} does not occur in prompt {prompt!r}")
            i = prompt.rfind(subject)
            prompt = prompt[:i] + "{}" + prompt[i + len(subject):]
        return cls(prompt=prompt, subject=subject, target_new=target_new, **kw)


@dataclass
class EditResult:
    """What an editor computed: the weight deltas plus everything needed to inspect them."""

    editor: str
    requests: list[EditRequest]
    deltas: list[WeightDelta]
    hparams: dict
    timings: dict[str, float] = field(default_factory=dict)
    probs_before: list[dict] = field(default_factory=list)  # per request {"new": p, "true": p}
    probs_after: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # editor-specific tensors (u, v*, losses, ...)

    def apply(self, model) -> None:
        deltas_mod.apply(model, self.deltas)

    def revert(self, model) -> None:
        deltas_mod.revert(model, self.deltas)

    @contextlib.contextmanager
    def applied(self, model):
        with deltas_mod.applied(model, self.deltas):
            yield model

    def save(self, path: str | Path) -> Path:
        meta = {
            "editor": self.editor,
            "hparams": self.hparams,
            "requests": [dataclasses.asdict(r) for r in self.requests],
        }
        return deltas_mod.save(self.deltas, path, meta)


def configs_dir() -> Path:
    """The `configs/` folder (override with FACTLOCATE_CONFIGS)."""
    env = os.environ.get("FACTLOCATE_CONFIGS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "configs"


def config_key(model_spec: str | None) -> str:
    """The config file stem for a model spec: 'gpt2-xl', 'gpt-j-6b', 'gemma-3-270m', ..."""
    name = (model_spec or "").rstrip("/").split("/")[-1]
    return name.lower() or "default"


def load_hparams(cls, editor: str, model_spec: str | None, overrides: dict | None = None):
    """Load `configs/<editor>/<model>.yaml` (else `default.yaml`) into the dataclass `cls`."""
    folder = configs_dir() / editor
    path = folder / f"{config_key(model_spec)}.yaml"
    if not path.exists():
        path = folder / "default.yaml"
    values = {}
    if path.exists():
        values = yaml.safe_load(path.read_text()) or {}
    values.update(overrides or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise FactlocateError(f"{path.name}: unknown {editor} hyperparameters {sorted(unknown)}")
    try:
        return cls(**values)
    except TypeError as e:
        raise FactlocateError(f"{editor} hyperparameters from {path}: {e}") from e
