"""The editor contract shared by ROME and every baseline.

An editor is a module under `factlocate.editors` that ends with one declaration,

    EDITOR = Editor(NAME, HParams, compute_edit, inputs=(...), State=..., prepare=..., train=...)

and one line in the registry (`factlocate.editors.EDITORS`). The evaluation runner, the sequential
protocol and the command line read that declaration and nothing else of the module:

    NAME          the editor's name on the command line and in results
    HParams       a dataclass subclassing `HParams` (validated; `HParams.load(model_spec)` reads
                  configs/<editor>/<model>.yaml shipped with the package; `stats_request()` says
                  which key statistics the editor reads, None for none)
    compute_edit  (model, requests, hparams, *, progress=True, **inputs) -> EditResult
    inputs        the optional inputs compute_edit takes, of `INPUTS`: "templates" (context templates;
                  its HParams then have `context_template_lengths` and `seed`), "stats" (key statistics),
                  "state" (a stateful editor's State)
    State         stateful editors only: what is carried from batch to batch of a sequence. A class
                  with `tensors() -> dict[str, Tensor]` and `from_tensors(dict) -> State`; compute_edit
                  takes `state=` and returns the next one in `result.extra["state"]`
    prepare       optional (model, hparams) -> dict of inputs: work on the unedited weights that an
                  evaluation does once and passes to every case (AlphaEdit's projections)
    train         trained editors only: (model, hparams, data, out, progress) -> log; hyperparameter
                  `data` names what the network is trained on
    batched       True where a call's requests are edited together, False where one after another
    settings      fixed hyperparameters of a registry alias (mend-cf is mend with data: cf)

Every `compute_edit` is built on `edit(...)`, which runs the shared prologue (check
the requests and that each subject occurs in its prompt, read p(target) before)
and epilogue (read p(target) with the deltas applied, build the `EditResult`).
`compute_edit` leaves the model's weights as it found them; the caller applies the
result's deltas (`result.apply(model)`, `result.revert(model)`, or
`with result.applied(model): ...`).

The same concept has the same name in every editor's hyperparameters: `layer` (one
edited layer) or `layers` (several), `fact_token`, `seed` (everything the editor
samples), `context_template_lengths`, `stats_corpus`/`stats_tokens`/`stats_dtype`, and
the paper's own names (`v_num_grad_steps`, `clamp_norm_factor`, `mom2_update_weight`, ...).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import ClassVar

import yaml

from factlocate import deltas as deltas_mod
from factlocate import scoring, tokens
from factlocate.deltas import WeightDelta
from factlocate.errors import FactlocateError

CONFIGS_ENV = "FACTLOCATE_CONFIGS"


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
    timings: dict[str, float] = field(default_factory=dict)  # "total" plus the editor's own steps
    probs_before: list[dict] = field(default_factory=list)  # per request {"new": p[, "true": p]}
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


# ---------------------------------------------------------------- hyperparameters


def configs_dir() -> Path:
    """The configs shipped inside the package (override with FACTLOCATE_CONFIGS)."""
    env = os.environ.get(CONFIGS_ENV)
    return Path(env) if env else Path(str(resources.files("factlocate").joinpath("configs")))


def config_key(model_spec: str | None) -> str:
    """The config file stem for a model spec: 'gpt2-xl', 'gpt-j-6b', 'gemma-3-270m', ..."""
    name = (model_spec or "").rstrip("/").split("/")[-1]
    return name.lower() or "default"


def missing_flags(missing: list[str]) -> str:
    """How a user gives the missing hyperparameters: --layer, or --set NAME=..."""
    return " and ".join("--layer" if m in ("layer", "layers") else f"--set {m}=..." for m in missing)


@dataclass
class HParams:
    """Base of every editor's hyperparameters.

    Subclasses set `EDITOR` (the config folder) and `REQUIRED` (fields a config or
    the user must give, because no value fits every model, e.g. the edited layer),
    and validate in `__post_init__` with `self.require(...)`.
    """

    EDITOR: ClassVar[str] = ""
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    def require(self, condition: bool, message: str) -> None:
        if not condition:
            raise FactlocateError(f"{self.EDITOR} hyperparameters: {message}")

    def missing(self) -> list[str]:
        return [name for name in self.REQUIRED if getattr(self, name) is None]

    def stats_request(self) -> "StatsRequest | None":
        """The key statistics this editor reads (layers, corpus, size, dtype); None: none."""
        return None

    @classmethod
    def path_for(cls, model_spec: str | None) -> Path:
        return configs_dir() / cls.EDITOR / f"{config_key(model_spec)}.yaml"

    @classmethod
    def load(cls, model_spec: str | None, overrides: dict | None = None, path: str | Path | None = None):
        """`configs/<editor>/<model>.yaml` (else the editor's default.yaml), or the YAML file `path`,
        with `overrides` on top."""
        if path is not None:
            source = Path(path)
            if not source.is_file():
                raise FactlocateError(f"hyperparameter file {source} does not exist")
        else:
            path = cls.path_for(model_spec)
            source = path if path.exists() else path.with_name("default.yaml")
        values = {}
        if source.exists():
            try:
                values = yaml.safe_load(source.read_text()) or {}
            except yaml.YAMLError as e:
                raise FactlocateError(f"{source} is not valid YAML: {e}") from e
        values.update(overrides or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise FactlocateError(f"{source.name}: unknown {cls.EDITOR} hyperparameters {sorted(unknown)}")
        try:
            hp = cls(**values)
        except TypeError as e:
            raise FactlocateError(f"{cls.EDITOR} hyperparameters from {source}: {e}") from e
        missing = hp.missing()
        if missing:
            raise FactlocateError(
                f"no {cls.EDITOR} config for model {model_spec!r} gives {', '.join(missing)}: looked for {path}; "
                f"pass {missing_flags(missing)} (or --hparams FILE)"
            )
        return hp


@dataclass(frozen=True)
class StatsRequest:
    """Which key statistics (second moments of MLP keys) an editor reads."""

    layers: tuple[int, ...]
    corpus: str
    tokens: int
    dtype: str


INPUTS = ("templates", "stats", "state")


@dataclass(frozen=True)
class Editor:
    """An editor's declaration (see the module docstring); the only thing the rest of factlocate reads."""

    NAME: str
    HParams: type[HParams]
    compute_edit: Callable[..., EditResult]
    inputs: tuple[str, ...] = ()
    State: type | None = None
    prepare: Callable[..., dict] | None = None
    train: Callable[..., dict] | None = None
    batched: bool = True
    settings: dict = field(default_factory=dict)

    def __post_init__(self):
        unknown = set(self.inputs) - set(INPUTS)
        if unknown:
            raise FactlocateError(f"editor {self.NAME} declares unknown inputs {sorted(unknown)}: use {INPUTS}")
        if (self.State is not None) != ("state" in self.inputs):
            raise FactlocateError(f"editor {self.NAME}: a State and the 'state' input come together")
        if self.train is not None and "data" not in {f.name for f in dataclasses.fields(self.HParams)}:
            raise FactlocateError(f"editor {self.NAME} is trained, so its HParams need a `data` field")

    @property
    def stateful(self) -> bool:
        return self.State is not None

    @property
    def trained(self) -> bool:
        return self.train is not None

    def takes(self, name: str) -> bool:
        return name in self.inputs

    def load_hparams(self, model_spec: str | None, overrides: dict | None = None, path: str | Path | None = None):
        """`HParams.load`, with this entry's fixed `settings` (an alias's) on top; contradicting them is an error."""
        overrides = dict(overrides or {})
        for key, value in self.settings.items():
            if key in overrides and overrides[key] != value:
                raise FactlocateError(f"editor {self.NAME} means {key}: {value}; for another {key} use the "
                                      f"base editor with --set {key}=...")
            overrides[key] = value
        return self.HParams.load(model_spec, overrides, path=path)


# ---------------------------------------------------------------- the shared prologue and epilogue


def check_requests(model, requests) -> list[EditRequest]:
    """A non-empty list of EditRequests whose subjects occur in their prompts."""
    if isinstance(requests, EditRequest):
        requests = [requests]
    requests = list(requests or [])
    if not requests:
        raise FactlocateError("the request list is empty: give at least one edit request")
    for r in requests:
        if not isinstance(r, EditRequest):
            raise FactlocateError(f"expected EditRequest objects, got {type(r).__name__}")
        tokens.subject_range(model, r.text, r.subject)
    return requests


def request_probs(model, requests: list[EditRequest]) -> list[dict]:
    """Per request, p(target_new) and p(target_true) on the rewrite prompt (teacher-forced, per token)."""
    prompts = [r.text for r in requests]
    new = scoring.target_nll(model, prompts, [r.target_new for r in requests]).neg().exp()
    out = [{"new": float(p)} for p in new]
    with_true = [i for i, r in enumerate(requests) if r.target_true]
    if with_true:
        true = scoring.target_nll(
            model, [prompts[i] for i in with_true], [requests[i].target_true for i in with_true]
        ).neg().exp()
        for i, p in zip(with_true, true):
            out[i]["true"] = float(p)
    return out


@dataclass
class Computed:
    """What an editor's own step returns to `edit`."""

    deltas: list[WeightDelta]
    extra: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def edit(name: str, model, requests, hparams: HParams, compute: Callable[[list[EditRequest]], Computed],
         options: dict | None = None) -> EditResult:
    """The shared body of every `compute_edit`: prologue, the editor's `compute`, epilogue.

    `timings["total"]` is the time of `compute` alone (not the probability read-outs).
    """
    if options:
        raise FactlocateError(f"editor {name} takes no {', '.join(sorted(options))} option")
    missing = hparams.missing()
    if missing:
        raise FactlocateError(f"no {name} {', '.join(missing)} is configured for this model: "
                              f"pass {missing_flags(missing)}")
    requests = check_requests(model, requests)
    before = request_probs(model, requests)
    start = time.perf_counter()
    done = compute(requests)
    seconds = time.perf_counter() - start
    with deltas_mod.applied(model, done.deltas):
        after = request_probs(model, requests)
    return EditResult(
        editor=name, requests=requests, deltas=done.deltas, hparams=dataclasses.asdict(hparams),
        timings={"total": seconds, **done.timings}, probs_before=before, probs_after=after, extra=done.extra,
    )
